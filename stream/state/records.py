"""Principal records: one principal's state on the state topic, signed, in one of two slots.

Key ``{group}/u/{principal}/{slot}`` (slot 0 or 1); value::

    b"PWR1" + len(key id) + key id + HMAC-SHA256(key, record key + body) + body
    body = partition (u32) + partitions (u32) + generation (u64) + flag (u8) + payload

``partition`` and ``partitions`` say which input partition wrote it, and how many the input topics
had then (:mod:`stream.state.store` moves principals when that changes); ``generation`` is the
checkpoint it belongs to; flag 1 marks a principal forgotten at that generation (no payload). The
tag is checked over the exact bytes before the payload is even parsed: a record that does not verify
is never unpickled. The payload is ``pickle((profile, cooldowns, {detector: (version,
pickle(export))}))``: each detector's part is unpickled apart, so a layout one of them cannot read
costs that detector alone (:func:`decode_state`). Records are not compressed one by one (zlib's set-up
costs more than a record's pickling); the producer may compress its batches.

A principal is written into the slot that does not hold its committed record, so that the
generation the group's offsets name can always be restored, whatever a later checkpoint left half
written (:mod:`stream.state.changelog`). Each manifest carries a digest of the (principal, partition,
generation) of every live record it covers (:func:`contribution`, summed), so a restore notices an
older record re-published in place of a newer one, or one missing.
"""

from __future__ import annotations

import hmac
import pickle
import struct
from dataclasses import dataclass

from detectors.portable import PrincipalState
from stream.errors import SnapshotError

MAGIC = b"PWR1"
_BODY = struct.Struct(">IIQB")
_TAG = 32
LIVE, FORGOTTEN = 0, 1
#: the digest is kept modulo this (a sum of keyed 256-bit contributions)
DIGEST_MOD = 1 << 256
_DIGEST_LABEL = b"privwatch-digest\0"
_CONTRIBUTION = struct.Struct(">IQ")


@dataclass(frozen=True)
class Header:
    """What a verified record says about itself (its payload is decoded only if it is chosen)."""

    partition: int
    partitions: int
    generation: int
    forgotten: bool
    key_id: str


def record_key(prefix: str, principal_id: str, slot: int) -> bytes:
    """``{prefix}{principal}/{slot}`` (prefix ``{group}/u/``)."""
    return f"{prefix}{principal_id}/{slot}".encode()


def parse_key(prefix: bytes, key: bytes) -> tuple[str, int] | None:
    """(principal, slot) of a record key under ``prefix``, or None for any other key."""
    if not key.startswith(prefix) or len(key) < len(prefix) + 3 or key[-2:-1] != b"/" or key[-1:] not in (b"0", b"1"):
        return None
    return key[len(prefix):-2].decode("utf-8", "replace"), key[-1] - 48


def encode_state(state: PrincipalState) -> bytes:
    """A principal's state as a record payload."""
    parts = {name: (version, pickle.dumps(value, pickle.HIGHEST_PROTOCOL))
             for name, (version, value) in state.detectors.items()}
    return pickle.dumps((state.profile, state.cooldowns, parts), pickle.HIGHEST_PROTOCOL)


def decode_state(payload: bytes) -> tuple[PrincipalState, list[str]]:
    """A *verified* payload's state, and the detectors whose part would not load (left out)."""
    try:
        profile, cooldowns, parts = pickle.loads(payload)
    except Exception as exc:  # verified bytes that do not load: refused loudly, never half-used
        raise SnapshotError(f"principal record does not load ({type(exc).__name__})") from None
    detectors, failed = {}, []
    for name, (version, raw) in parts.items():
        try:
            detectors[name] = (version, pickle.loads(raw))
        except Exception:  # a class this version no longer has: that detector's part only
            failed.append(name)
    return PrincipalState(profile, cooldowns, detectors), failed


def _sign(key: bytes, record: bytes, body: bytes) -> bytes:
    # one-shot (OpenSSL's HMAC in one call): hmac.new's Python object costs more than a record's bytes
    return hmac.digest(key, record + body, "sha256")


def seal(key: bytes, key_id: str, record: bytes, partition: int, partitions: int, generation: int,
         payload: bytes | None) -> bytes:
    """The signed value of record key ``record``; ``payload`` None marks the principal forgotten."""
    body = _BODY.pack(partition, partitions, generation, FORGOTTEN if payload is None else LIVE) + (payload or b"")
    ident = key_id.encode()
    return MAGIC + bytes([len(ident)]) + ident + _sign(key, record, body) + body


def open_record(value: bytes, record: bytes, keys: dict[str, bytes]) -> tuple[Header, bytes]:
    """Verify ``value`` (stored under record key ``record``) with the key its id names; its header and
    payload. :class:`SnapshotError` says why it is refused."""
    if not value.startswith(MAGIC) or len(value) < len(MAGIC) + 1:
        raise SnapshotError("not a privwatch principal record")
    at = len(MAGIC) + 1
    ident = value[len(MAGIC)]
    key_id = value[at:at + ident].decode("ascii", "replace")
    at += ident
    tag, body = value[at:at + _TAG], value[at + _TAG:]
    if len(body) < _BODY.size:
        raise SnapshotError("principal record truncated")
    key = keys.get(key_id)
    if key is None:
        raise SnapshotError(f"principal record signed with key id {key_id!r}, which is not configured")
    if not hmac.compare_digest(_sign(key, record, body), tag):
        raise SnapshotError("principal record signature does not verify")
    partition, partitions, generation, flag = _BODY.unpack_from(body)
    return Header(partition, partitions, generation, flag == FORGOTTEN, key_id), body[_BODY.size:]


def peek(value: bytes) -> Header | None:
    """A record's header *unverified*: only to skip records of other partitions or generations before
    spending a signature check on them (None: not a principal record)."""
    if not value.startswith(MAGIC) or len(value) < len(MAGIC) + 1:
        return None
    at = len(MAGIC) + 1 + value[len(MAGIC)] + _TAG
    if len(value) < at + _BODY.size:
        return None
    partition, partitions, generation, flag = _BODY.unpack_from(value, at)
    return Header(partition, partitions, generation, flag == FORGOTTEN, "")


def contribution(key: bytes, principal_id: str, partition: int, generation: int) -> int:
    """What one live record adds to its manifest's digest: keyed, so that no one without the key can
    make up records that sum to a manifest's digest."""
    message = _DIGEST_LABEL + principal_id.encode() + _CONTRIBUTION.pack(partition, generation)
    return int.from_bytes(hmac.digest(key, message, "sha256"), "big")
