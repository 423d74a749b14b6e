"""Signed verdict records: the canonical bytes an analyst signs, signing, verifying, and key files.

Ed25519 (``cryptography``): an analyst holds a private key; the service and the triage app hold
only public keys, by key id (:mod:`stream.feedback.analysts`). The signature covers every field
that decides what a verdict does, and the note, as the strings written in the record
(``feedback.schema.json`` spells the encoding out for other implementations).
"""

from __future__ import annotations

import base64
import os
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from detectors.alerts import iso
from stream.errors import ConfigError

#: what the signed bytes start with: names the encoding, so a signature means nothing elsewhere
DOMAIN = b"privwatch-verdict/1\n"
#: the longest a verdict may stay in force
MAX_EXPIRY_DAYS = 30
#: the fields a signature covers, in this order
SIGNED = ("verdict_id", "alert_id", "verdict", "scope", "resource_id", "revokes", "ts", "expires", "analyst",
          "key_id", "note")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def signed_bytes(doc: dict[str, Any]) -> bytes:
    """The canonical bytes a verdict's signature covers (absent optional fields count as "").

    >>> signed_bytes({"verdict_id": "v", "alert_id": "a", "verdict": "benign", "scope": "alert", "ts": "t",
    ...               "expires": "x", "analyst": "ana", "key_id": "k"})
    b'privwatch-verdict/1\\n["v","a","benign","alert","","","t","x","ana","k",""]'
    """
    return DOMAIN + orjson.dumps([str(doc.get(name) or "") for name in SIGNED])


def new_verdict_id() -> str:
    """A fresh, unguessable verdict id (128 random bits, hex)."""
    return secrets.token_hex(16)


def verdict_record(alert_id: str, verdict: str, scope: str, analyst: str, key_id: str, now: float,
                   days: float = 7.0, resource_id: str | None = None, revokes: str | None = None,
                   note: str | None = None) -> dict[str, Any]:
    """An unsigned verdict record, valid for ``days`` from ``now`` (at most :data:`MAX_EXPIRY_DAYS`)."""
    if not 0 < days <= MAX_EXPIRY_DAYS:
        raise ValueError(f"a verdict lasts more than 0 and at most {MAX_EXPIRY_DAYS} days")
    record: dict[str, Any] = {
        "type": "feedback", "verdict_id": new_verdict_id(), "alert_id": alert_id, "verdict": verdict,
        "scope": scope, "ts": iso(now), "expires": iso(now + days * 86_400.0), "analyst": analyst,
        "key_id": key_id,
    }
    for name, value in (("resource_id", resource_id), ("revokes", revokes), ("note", note)):
        if value:
            record[name] = value
    return record


def sign(record: dict[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    """``record`` with its ``signature``."""
    return {**record, "signature": b64(key.sign(signed_bytes(record)))}


def verify(record: dict[str, Any], public_key: Ed25519PublicKey) -> bool:
    """Whether ``record``'s signature is ``public_key``'s over its signed fields."""
    try:
        public_key.verify(unb64(str(record.get("signature", ""))), signed_bytes(record))
    except (InvalidSignature, ValueError):
        return False
    return True


# -- keys ------------------------------------------------------------------------------------------
def generate() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def private_pem(key: Ed25519PrivateKey) -> bytes:
    """PKCS#8 PEM, unencrypted (browsers import it as is; keep the file readable by its owner only)."""
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def public_text(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """The 32 raw bytes of a public key, base64url: how the analysts file writes it."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return b64(public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))


def load_public(text: str) -> Ed25519PublicKey:
    """A public key from :func:`public_text`'s form; ValueError when it is not one."""
    raw = unb64(text.strip())
    if len(raw) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes")
    return Ed25519PublicKey.from_public_bytes(raw)


def load_private(pem: bytes, where: str) -> Ed25519PrivateKey:
    """An analyst's private key from PEM (ConfigError naming ``where``, never the key, if it is not one)."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise ConfigError(f"{where}: not an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{where}: not an Ed25519 key")
    return key


def write_key_pair(path: Path) -> Ed25519PrivateKey:
    """Generate a key pair, write the private key to ``path`` (mode 0600, never overwriting); return it."""
    key = generate()
    try:
        with open(path, "xb", opener=lambda p, flags: os.open(p, flags, 0o600)) as fh:
            fh.write(private_pem(key))
    except FileExistsError:
        raise ConfigError(f"{path} exists; not overwriting a key") from None
    return key


def key_id_for(analyst: str, now: float) -> str:
    """A readable key id: the analyst's name and the month the key was made.

    >>> key_id_for("alice", 1.7e9)
    'alice-2023-11'
    """
    safe = "".join(c if c.isalnum() or c in "._-" else "-" for c in analyst)[:48]
    return f"{safe}-{datetime.fromtimestamp(now, UTC):%Y-%m}"
