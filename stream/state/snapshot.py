"""Snapshot encoding: versioned, chunked, authenticated. Pure functions, no Kafka.

A snapshot of one partition is ``zlib(pickle({"engine": engine, "incidents": [...]}))`` (its detector
state and its open correlated incidents) cut into chunks, plus a manifest::

    b"privwatch-snapshot/2\\n" + key_id + b"\\n" + hex(HMAC-SHA256(key, body)) + b"\\n" + body

The key id names which of the configured keys signed it (the body repeats it, signed), so keys can be
rotated: a new key signs, older ones are kept for verifying until no snapshot of theirs is left.
Manifests written before key ids (``b"privwatch-snapshot\\n" + tag + b"\\n" + body``) verify with
any configured key.

where ``body`` is JSON naming the format, privwatch, model and River versions, the consumer group,
the input partition, the generation, the input offsets the state reflects, and the SHA-256 of every
chunk. The tag is checked over the exact body bytes *before* the JSON is even parsed, then the
versions, then every chunk's hash; only then is anything unpickled. Pickle is code, and the state
topic is not trusted by itself: a corrupt, foreign or unauthenticated snapshot raises
:class:`~stream.errors.SnapshotError` and is never loaded.

Compatibility: the model version and the River version must match exactly (River models pickle
their internals); privwatch versions must agree on ``major.minor``, so a patch release keeps its
learned state across a deploy. Formats in ``READABLE`` load: format 2 held the engine alone (no
incidents); formats 2 and 3 kept a seen-set's days and counts in two arrays, format 4 in one array
(day and count per key), format 5 its keys and days packed in ``bytes``:
:class:`~detectors.compact.SeenSet` unpickles all of them. Format 6 added the multivariate
detector's batch of windows not yet learned by its trees (earlier formats restore with none waiting);
format 7 holds, instead of the trees, the windows' features that scoring needs (the trees are built
from them when a score asks: ``Multivariate._trees``); a detector from an earlier format carries on
with the trees it restored until its features cover a complete window of theirs. Format 8 keeps the
multivariate detector's per-window resource hashes in ``bytes`` instead of an ``array``. A version that
cannot read a newer format refuses it by number instead of failing inside unpickling.

Format 9 (incremental state): the chunks hold only what is no one principal's (the engine's shared
state, :func:`detectors.portable.export_shared`, and the open incidents); each principal's state is a
record of its own (:mod:`stream.state.records`). The manifest adds how many input partitions there
were (``partitions``), the first generation of that partitioning (``lineage``), and the digest and
count of the live principal records it covers. Its compatibility is no longer all or nothing on the
model and River versions: each detector's state carries its own version, migrated on restore
(:mod:`detectors.portable`); only formats 2 to 8, whole pickled engines, still need the same model
and River versions.
"""

from __future__ import annotations

import hashlib
import hmac
import pickle
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import river

from detectors.engine import MODEL_VERSION, Engine
from stream import __version__
from stream.errors import SnapshotError
from stream.ops.gctune import paused_gc

FORMAT = 9
#: formats this version restores (2: the pickled engine alone; 2 and 3: seen-sets in four parts;
#: 4: seen-sets in ``array`` objects; 2 to 5: no batch of unlearned windows; 2 to 6: live trees;
#: 2 to 7: multivariate windows' resources in an ``array``; 2 to 8: whole engines; 9: incremental)
READABLE = (2, 3, 4, 5, 6, 7, 8, 9)
#: the first format with principal records (the chunks hold the shared state only)
INCREMENTAL = 9
#: the last format that held a whole engine
WHOLE_ENGINE = 8
MAGIC = b"privwatch-snapshot\n"
#: manifests naming their key id (since key rotation)
MAGIC_KEYED = b"privwatch-snapshot/2\n"
_KEY_ID_MAX = 64
CHUNK_BYTES = 512 * 1024  # well under Kafka's default 1 MiB message limit
MIN_KEY_BYTES = 16
_TAG_LEN = 64  # hex SHA-256


@dataclass(frozen=True)
class Snapshot:
    """Encoded snapshot: ``chunks`` in order, and the signed ``manifest`` bytes."""

    generation: int
    chunks: list[bytes]
    manifest: bytes
    payload_bytes: int


def _sign(key: bytes, body: bytes) -> str:
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def _check_key(key: bytes) -> None:
    if len(key) < MIN_KEY_BYTES:
        raise SnapshotError(f"state key too short: at least {MIN_KEY_BYTES} bytes are needed")


def versions() -> dict[str, Any]:
    return {"format": FORMAT, "privwatch": __version__, "model": MODEL_VERSION, "river": river.__version__}


def _minor(version: Any) -> str:
    return ".".join(str(version).split(".")[:2])


def _incompatible(body: dict[str, Any]) -> dict[str, Any]:
    ours = versions()
    if body.get("format") not in READABLE:
        return {"format": (body.get("format"), ours["format"])}
    if body.get("format") == INCREMENTAL:
        return {}  # each detector's state says its own version (detectors.portable)
    bad = {k: (body.get(k), ours[k]) for k in ("model", "river") if body.get(k) != ours[k]}
    if _minor(body.get("privwatch")) != _minor(ours["privwatch"]):
        bad["privwatch"] = (body.get("privwatch"), ours["privwatch"])
    return bad


def encode_payload(engine: Engine, incidents: Sequence[Any] = ()) -> bytes:
    state = {"engine": engine, "incidents": list(incidents)}
    return zlib.compress(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL), 1)


def encode(engine: Engine, offsets: dict[str, int], partition: int, generation: int, key: bytes,
           group: str = "", chunk_bytes: int = CHUNK_BYTES, incidents: Sequence[Any] = (),
           key_id: str = "1") -> Snapshot:
    """A whole-engine snapshot (format 8, what versions before incremental state wrote: kept to test
    that their snapshots still restore): ``engine`` and the partition's open ``incidents``
    (:mod:`stream.alertmanager.correlate`) with the input ``offsets`` (next offset per topic) they reflect."""
    return seal(encode_payload(engine, incidents), offsets, partition, generation, key, group, chunk_bytes, key_id,
                format=WHOLE_ENGINE)


def encode_shared(shared: dict[str, Any], incidents: Sequence[Any] = ()) -> bytes:
    """A format-9 payload: the engine's shared state (:func:`detectors.portable.export_shared`) and the
    partition's open incidents."""
    state = {"shared": shared, "incidents": list(incidents)}
    return zlib.compress(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL), 1)


def decode_shared(manifest: dict[str, Any], chunks: list[bytes | None]) -> tuple[dict[str, Any], list[Any]]:
    """The shared state and the open incidents of a *verified* format-9 manifest and its chunks."""
    state = _load(manifest, chunks)
    if not isinstance(state, dict) or not isinstance(state.get("shared"), dict):
        raise SnapshotError("snapshot does not hold shared state")
    incidents = state.get("incidents")
    return state["shared"], list(incidents) if isinstance(incidents, list) else []


def seal(payload: bytes, offsets: dict[str, int], partition: int, generation: int, key: bytes, group: str = "",
         chunk_bytes: int = CHUNK_BYTES, key_id: str = "1", extra: dict[str, Any] | None = None,
         format: int = FORMAT) -> Snapshot:
    """Cut a payload into chunks and sign the manifest that names them with ``key`` (whose id is
    ``key_id``); ``extra`` adds fields to the manifest's body (format 9's partitioning and digest)."""
    _check_key(key)
    chunks = [payload[i:i + chunk_bytes] for i in range(0, len(payload), chunk_bytes)] or [b""]
    body = {
        **versions(),
        **(extra or {}),
        "format": format,
        "group": group,
        "partition": partition,
        "generation": generation,
        "offsets": offsets,
        "chunks": [hashlib.sha256(c).hexdigest() for c in chunks],
        "payload_bytes": len(payload),
        "key_id": key_id,
    }
    raw = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    manifest = MAGIC_KEYED + key_id.encode() + b"\n" + _sign(key, raw).encode() + b"\n" + raw
    return Snapshot(generation, chunks, manifest, len(payload))


def _split(manifest: bytes) -> tuple[str | None, bytes, bytes]:
    """(key id or None for a manifest from before key ids, tag, body); SnapshotError when malformed."""
    if not isinstance(manifest, bytes | bytearray):
        raise SnapshotError("not a privwatch snapshot manifest (bad magic; bare pickle or foreign record)")
    key_id: str | None = None
    if manifest.startswith(MAGIC_KEYED):
        raw_id, sep, rest = bytes(manifest[len(MAGIC_KEYED):]).partition(b"\n")
        if not sep or not 0 < len(raw_id) <= _KEY_ID_MAX:
            raise SnapshotError("manifest names no key id")
        key_id = raw_id.decode("ascii", "replace")
    elif manifest.startswith(MAGIC):
        rest = bytes(manifest[len(MAGIC):])
    else:
        raise SnapshotError("not a privwatch snapshot manifest (bad magic; bare pickle or foreign record)")
    tag, sep, raw = rest[:_TAG_LEN], rest[_TAG_LEN:_TAG_LEN + 1], rest[_TAG_LEN + 1:]
    if sep != b"\n" or len(tag) != _TAG_LEN:
        raise SnapshotError("manifest carries no signature")
    return key_id, tag, raw


def claimed_generation(manifest: bytes) -> int:
    """The generation a manifest *claims* (unverified: only for ordering and housekeeping), or -1."""
    try:
        body = orjson.loads(_split(manifest)[2])
        return int(body["generation"]) if isinstance(body, dict) else -1
    except (SnapshotError, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return -1


def _verified(key_id: str | None, tag: bytes, raw: bytes, keys: dict[str, bytes]) -> bool:
    if key_id is not None:
        key = keys.get(key_id)
        if key is None:
            raise SnapshotError(f"manifest signed with key id {key_id!r}, which is not configured")
        return hmac.compare_digest(_sign(key, raw).encode(), tag)
    return any(hmac.compare_digest(_sign(key, raw).encode(), tag) for key in keys.values())


def read_manifest(manifest: bytes, keys: bytes | dict[str, bytes]) -> dict[str, Any]:
    """Verify and parse a manifest with the key its id names (``keys`` by id; one key: any id);
    raise :class:`SnapshotError` saying why it is refused."""
    if isinstance(keys, bytes | bytearray):
        keys = {"*": bytes(keys)}
    for key in keys.values():
        _check_key(key)
    key_id, tag, raw = _split(manifest)
    if len(keys) == 1 and "*" in keys:
        key_id = None  # a single key given without its id verifies whatever id the manifest names
    if not _verified(key_id, tag, raw, keys):
        raise SnapshotError("manifest signature does not verify (tampered, or written with another key)")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise SnapshotError("corrupt manifest body") from None
    if not isinstance(body, dict):
        raise SnapshotError("corrupt manifest body")
    if key_id is not None and body.get("key_id") != key_id:
        raise SnapshotError("manifest's key id does not match its signed body")
    bad = _incompatible(body)
    if bad:
        raise SnapshotError(f"foreign snapshot versions (theirs, ours): {bad}")
    chunks, offsets = body.get("chunks"), body.get("offsets")
    if (not isinstance(chunks, list) or not all(isinstance(c, str) for c in chunks) or not chunks
            or not isinstance(offsets, dict) or not all(isinstance(v, int) for v in offsets.values())
            or not isinstance(body.get("partition"), int) or not isinstance(body.get("generation"), int)):
        raise SnapshotError("manifest lacks required fields")
    return body


def decode(manifest: dict[str, Any], chunks: list[bytes | None]) -> Engine:
    """Rebuild the engine from a *verified* manifest and its chunks (in order)."""
    return decode_state(manifest, chunks)[0]


def decode_state(manifest: dict[str, Any], chunks: list[bytes | None]) -> tuple[Engine, list[Any]]:
    """The engine and the open incidents of a *verified* manifest of formats 2 to 8 (a whole engine)
    and its chunks (in order)."""
    state = _load(manifest, chunks)
    if manifest.get("format") == 2:  # the engine alone
        state = {"engine": state, "incidents": []}
    if not isinstance(state, dict) or not isinstance(state.get("engine"), Engine):
        raise SnapshotError("snapshot does not hold an engine")
    incidents = state.get("incidents")
    return state["engine"], list(incidents) if isinstance(incidents, list) else []


def _load(manifest: dict[str, Any], chunks: list[bytes | None]) -> Any:
    """The unpickled payload of a verified manifest, once every chunk matches its hash."""
    if len(chunks) != len(manifest["chunks"]) or any(c is None for c in chunks):
        raise SnapshotError("snapshot incomplete: chunks missing")
    for i, (chunk, digest) in enumerate(zip(chunks, manifest["chunks"], strict=True)):
        if not hmac.compare_digest(hashlib.sha256(chunk or b"").hexdigest(), digest):
            raise SnapshotError(f"chunk {i} does not match its hash")
    try:
        raw = zlib.decompress(b"".join(c or b"" for c in chunks))
        with paused_gc():
            state = pickle.loads(raw)
    except Exception as exc:  # verified bytes that still fail to load: a bug, refuse loudly
        raise SnapshotError(f"snapshot does not load ({type(exc).__name__})") from None
    return state
