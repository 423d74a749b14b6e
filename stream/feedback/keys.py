"""Secrets of the feedback path, from a setting or a file, and the analyst's signing key.

Settings read each secret's ``*_file`` into the secret itself (:mod:`stream.settings`); here they are
checked for length. Never logged.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from pydantic import SecretStr

from stream.errors import ConfigError
from stream.feedback.signing import load_private

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from stream.settings import Settings

#: the shortest key accepted for a MAC or a session signature (HMAC-SHA256's block of security)
MIN_KEY_BYTES = 32
ANALYST_KEY_ENV = "PRIVWATCH_ANALYST_KEY"


def read_secret(value: SecretStr | None, name: str, min_bytes: int = MIN_KEY_BYTES) -> bytes | None:
    """The secret ``name`` (surrounding whitespace stripped); None when unset; ConfigError when it is
    shorter than ``min_bytes``."""
    if value is None:
        return None
    secret = value.get_secret_value().encode().strip()
    if len(secret) < min_bytes:
        raise ConfigError(f"{name} must be at least {min_bytes} bytes")
    return secret


def alert_id_key(settings: Settings) -> bytes | None:
    return read_secret(settings.alert_id_key, "alert_id_key")


def analyst_key(settings: Settings, environ: Mapping[str, str] | None = None) -> Ed25519PrivateKey:
    """The analyst's private key: ``analyst_key_file``, else the PEM in ``PRIVWATCH_ANALYST_KEY``."""
    environ = os.environ if environ is None else environ
    if settings.analyst_key_file:
        try:
            with open(settings.analyst_key_file, "rb") as fh:
                pem = fh.read()
        except OSError as exc:
            raise ConfigError(f"cannot read analyst_key_file {settings.analyst_key_file}: {exc.strerror}") from None
        return load_private(pem, settings.analyst_key_file)
    if environ.get(ANALYST_KEY_ENV):
        return load_private(environ[ANALYST_KEY_ENV].encode(), ANALYST_KEY_ENV)
    raise ConfigError(f"no analyst key: set analyst_key_file (PRIVWATCH_ANALYST_KEY_FILE) or {ANALYST_KEY_ENV}")
