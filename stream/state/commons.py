"""Commons records: one input partition's partial aggregates on the commons topic, signed. Pure, no Kafka.

Key ``{group}/commons/{p}`` (the commons topic is compacted: the latest partial per partition stays);
value: a principal record's envelope (:func:`stream.state.records.seal`, the state key and signature:
no second scheme) whose ``partition`` is ``p``, ``partitions`` the input topics' partition count when
it was written, ``generation`` a sequence number of the publisher, and whose payload is::

    format (u16) + published_at (f64, the publisher's wall clock) + pickle({detector: (state version, pickle(part))})

The signature is checked over the exact bytes before anything is parsed; the format before the outer
pickle is loaded; each detector's part is loaded only when its state version is the one this version
of privwatch reads (another is left out, as one principal's record leaves out a detector's part it
cannot read). What is refused raises :class:`CommonsRefused` with a low-cardinality reason.
"""

from __future__ import annotations

import pickle
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from stream.errors import SnapshotError
from stream.state import records

#: the layout of a commons record's payload: bump when it changes (older ones are then refused)
FORMAT = 1
_HEAD = struct.Struct(">Hd")
#: why a commons record is refused (the refusal counter's labels)
REASONS = ("unsigned", "bad_signature", "format", "partitions", "malformed")


class CommonsRefused(Exception):
    """A commons record that is not used; ``reason`` is one of :data:`REASONS`."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True)
class Partial:
    """One input partition's partial as read back: what :meth:`detectors.engine.Engine.view` takes."""

    partition: int
    published_at: float
    sequence: int
    aggregates: dict[str, Any]
    #: detectors whose part was left out (another state version)
    skipped: tuple[str, ...] = ()


def record_key(group: str, partition: int) -> bytes:
    return f"{group}/commons/{partition}".encode()


def parse_key(group: str, key: bytes | None) -> int | None:
    """The input partition a commons record key names, or None (another group's, or not one)."""
    prefix = f"{group}/commons/".encode()
    if key is None or not key.startswith(prefix) or not key[len(prefix):].isdigit():
        return None
    return int(key[len(prefix):])


def seal(partial: Mapping[str, Any], versions: Mapping[str, int], key: bytes, key_id: str, group: str,
         partition: int, partitions: int, sequence: int, published_at: float) -> tuple[bytes, bytes]:
    """(record key, signed value) of ``partial`` (an engine's :meth:`~detectors.engine.Engine.partial`;
    ``versions``: each detector's state version)."""
    parts = {name: (versions.get(name, 0), pickle.dumps(value, pickle.HIGHEST_PROTOCOL))
             for name, value in partial.items()}
    payload = _HEAD.pack(FORMAT, published_at) + pickle.dumps(parts, pickle.HIGHEST_PROTOCOL)
    rkey = record_key(group, partition)
    return rkey, records.seal(key, key_id, rkey, partition, partitions, sequence, payload)


def verify(value: bytes, rkey: bytes, keys: dict[str, bytes], partitions: int) -> tuple[records.Header, bytes]:
    """Check a record's signature (nothing is parsed before) and its partitioning; its header and payload."""
    try:
        header, payload = records.open_record(value, rkey, keys)
    except SnapshotError as exc:
        reason = "bad_signature" if "does not verify" in str(exc) else "unsigned"
        raise CommonsRefused(reason, str(exc)) from None
    if header.forgotten or len(payload) < _HEAD.size:
        raise CommonsRefused("malformed", "no payload")
    if header.partitions != partitions:
        raise CommonsRefused("partitions", f"written for {header.partitions} input partitions, not {partitions}")
    return header, payload


def decode(header: records.Header, payload: bytes, versions: Mapping[str, int]) -> Partial:
    """A *verified* record's partial: the parts whose state version is ``versions``' (this version's)."""
    form, published_at = _HEAD.unpack_from(payload)
    if form != FORMAT:
        raise CommonsRefused("format", f"format {form}, this version reads {FORMAT}")
    try:
        parts = pickle.loads(payload[_HEAD.size:])
        aggregates, skipped = {}, []
        for name, (version, raw) in parts.items():
            if versions.get(name) != version:
                skipped.append(name)
                continue
            aggregates[name] = pickle.loads(raw)
    except Exception as exc:  # verified bytes that do not load: refused, never half-used
        raise CommonsRefused("malformed", type(exc).__name__) from None
    return Partial(header.partition, published_at, header.generation, aggregates, tuple(skipped))


def open_partial(value: bytes, rkey: bytes, keys: dict[str, bytes], partitions: int,
                 versions: Mapping[str, int]) -> Partial:
    """Verify then decode one commons record (:func:`verify`, :func:`decode`)."""
    header, payload = verify(value, rkey, keys, partitions)
    return decode(header, payload, versions)
