"""Certificates for the secure-transport tests, made with ``cryptography``: a CA, the broker's
certificate (for 127.0.0.1 and localhost) and a client certificate, all signed by the CA."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Certificates:
    ca: Path  # the CA certificate, PEM
    broker_keystore: Path  # the broker's key and certificate chain, PEM
    client_cert: Path
    client_key: Path
    server_cert: Path  # the broker's certificate and key apart, for servers that want two files
    server_key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _issue(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name, signer: ec.EllipticCurvePrivateKey,
           ca: bool = False, server: bool = False) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(issuer)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    elif not ca:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    return builder.sign(signer, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def make_certificates(directory: Path) -> Certificates:
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, broker_key, client_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ca = _issue("privwatch test CA", ca_key, _name("privwatch test CA"), ca_key, ca=True)
    broker = _issue("localhost", broker_key, ca.subject, ca_key, server=True)
    client = _issue("privwatch", client_key, ca.subject, ca_key)
    paths = Certificates(directory / "ca.pem", directory / "broker.pem", directory / "client.pem",
                         directory / "client.key", directory / "server.pem", directory / "server.key")
    paths.server_cert.write_bytes(_pem(broker))
    paths.server_key.write_bytes(_key_pem(broker_key))
    paths.ca.write_bytes(_pem(ca))
    paths.broker_keystore.write_bytes(_key_pem(broker_key) + _pem(broker) + _pem(ca))
    paths.client_cert.write_bytes(_pem(client))
    paths.client_key.write_bytes(_key_pem(client_key))
    paths.client_key.chmod(0o600)
    return paths
