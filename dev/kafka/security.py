"""Listener and security configuration for the local broker: SASL_SSL (SCRAM) and SSL (mutual TLS)
listeners beside the PLAINTEXT one, for tests that configure a secure broker themselves.

Standard library only: the certificates are the caller's (the tests make them with ``cryptography``),
given as PEM files: Kafka reads PEM key and trust stores directly (``ssl.keystore.type=PEM``).
SCRAM credentials are written into the KRaft metadata when the storage is formatted
(:func:`scram_format_args`, passed to :class:`broker.LocalKafka` as ``format_args``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

SCRAM_LOGIN = "org.apache.kafka.common.security.scram.ScramLoginModule required;"


@dataclass(frozen=True)
class SecureListeners:
    """Ports of the secure listeners and the PEM files they use.

    Parameters
    ----------
    sasl_ssl_port, ssl_port : int
        Ports (on 127.0.0.1) of the SASL_SSL listener (SCRAM-SHA-512) and of the SSL listener, which
        requires a client certificate (mutual TLS).
    keystore : Path
        The broker's private key (PKCS#8, unencrypted) followed by its certificate chain, PEM.
    truststore : Path
        The CA certificate(s) the broker trusts for client certificates, PEM.
    """

    sasl_ssl_port: int
    ssl_port: int
    keystore: Path
    truststore: Path

    def properties(self, plain_port: int, controller_port: int) -> dict[str, str]:
        """Broker properties adding the two listeners (inter-broker traffic stays on PLAINTEXT)."""
        controller = f"CONTROLLER://127.0.0.1:{controller_port}"
        advertised = (f"PLAINTEXT://127.0.0.1:{plain_port},SASL_SSL://127.0.0.1:{self.sasl_ssl_port},"
                      f"SSL://127.0.0.1:{self.ssl_port}")
        return {
            "listeners": f"{advertised},{controller}",
            "advertised.listeners": advertised,
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,SSL:SSL",
            "sasl.enabled.mechanisms": "SCRAM-SHA-512",
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": SCRAM_LOGIN,
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(self.keystore),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(self.truststore),
            "listener.name.ssl.ssl.client.auth": "required",
        }


def scram_format_args(users: Mapping[str, str], mechanism: str = "SCRAM-SHA-512") -> list[str]:
    """``kafka-storage format`` arguments creating SCRAM users (name -> password) at format time.

    >>> scram_format_args({"privwatch": "pw"})
    ['--add-scram', 'SCRAM-SHA-512=[name=privwatch,password=pw]']
    """
    args = []
    for name, password in users.items():
        args += ["--add-scram", f"{mechanism}=[name={name},password={password}]"]
    return args
