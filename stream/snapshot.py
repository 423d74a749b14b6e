"""Snapshot encoding: versioned, chunked, authenticated. Pure functions, no Kafka.

A snapshot of one partition's engine is ``zlib(pickle(engine))`` cut into chunks, plus a manifest
(JSON) naming the format, privwatch and River versions, the input offsets it reflects, and the
SHA-256 of every chunk, signed with HMAC-SHA256. Nothing is unpickled unless the manifest's HMAC
verifies with our key, its versions match ours, and every chunk's hash matches: pickle is code,
and the state topic is not trusted by itself.
"""

from __future__ import annotations

import hashlib
import hmac
import pickle
import zlib
from dataclasses import dataclass
from typing import Any

import orjson
import river

from detectors.engine import MODEL_VERSION, Engine
from stream import __version__
from stream.errors import SnapshotError

FORMAT = 1
CHUNK_BYTES = 512 * 1024  # well under Kafka's default 1 MiB message limit


@dataclass(frozen=True)
class Snapshot:
    """Encoded snapshot: ``chunks`` in order, and the signed ``manifest`` bytes."""

    generation: str
    chunks: list[bytes]
    manifest: bytes
    payload_bytes: int


def _sign(key: bytes, body: bytes) -> str:
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def _versions() -> dict[str, Any]:
    return {"format": FORMAT, "privwatch": __version__, "model": MODEL_VERSION, "river": river.__version__}


def encode(engine: Engine, offsets: dict[str, int], partition: int, generation: str, key: bytes,
           chunk_bytes: int = CHUNK_BYTES) -> Snapshot:
    """Serialise ``engine`` with the input ``offsets`` (next offset per topic) it reflects."""
    payload = zlib.compress(pickle.dumps(engine, protocol=pickle.HIGHEST_PROTOCOL), 1)
    chunks = [payload[i:i + chunk_bytes] for i in range(0, len(payload), chunk_bytes)] or [b""]
    body = {
        **_versions(),
        "partition": partition,
        "generation": generation,
        "offsets": offsets,
        "chunks": [hashlib.sha256(c).hexdigest() for c in chunks],
        "payload_bytes": len(payload),
    }
    raw = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    manifest = orjson.dumps({"body": orjson.Fragment(raw), "hmac": _sign(key, raw)})
    return Snapshot(generation, chunks, manifest, len(payload))


def read_manifest(manifest: bytes, key: bytes) -> dict[str, Any]:
    """Verify and parse a manifest; raise :class:`SnapshotError` saying why it is refused."""
    try:
        outer = orjson.loads(manifest)
        raw = orjson.dumps(outer["body"], option=orjson.OPT_SORT_KEYS)
        tag = outer["hmac"]
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise SnapshotError(f"corrupt manifest ({type(exc).__name__})") from None
    if not isinstance(tag, str) or not hmac.compare_digest(_sign(key, raw), tag):
        raise SnapshotError("manifest signature does not verify (tampered, or written with another key)")
    body = outer["body"]
    mismatched = {k: (body.get(k), v) for k, v in _versions().items() if body.get(k) != v}
    if mismatched:
        raise SnapshotError(f"foreign snapshot versions {mismatched}")
    return body


def decode(manifest: dict[str, Any], chunks: list[bytes | None]) -> Engine:
    """Rebuild the engine from a verified manifest and its chunks (in order)."""
    if len(chunks) != len(manifest["chunks"]) or any(c is None for c in chunks):
        raise SnapshotError("snapshot incomplete: chunks missing")
    for i, (chunk, digest) in enumerate(zip(chunks, manifest["chunks"], strict=True)):
        if hashlib.sha256(chunk or b"").hexdigest() != digest:
            raise SnapshotError(f"chunk {i} does not match its hash")
    try:
        engine = pickle.loads(zlib.decompress(b"".join(c or b"" for c in chunks)))
    except Exception as exc:  # verified bytes that still fail to load: a bug, refuse loudly
        raise SnapshotError(f"snapshot does not load ({type(exc).__name__})") from None
    if not isinstance(engine, Engine):
        raise SnapshotError("snapshot does not hold an engine")
    return engine
