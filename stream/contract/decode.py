"""Bytes in, :class:`~detectors.events.Event` out, or a :class:`~stream.errors.BadRecord` saying why not.

Parsing is jiter with duplicate keys refused (``{"principal": ..., "principal": ...}`` used to be
attributed to the last one), validation pydantic-core over the parsed document; flattening is
:func:`detectors.events.from_document`; output encoding is orjson. Event-time sanity checks live here
because they need the wall clock, which the engine itself never reads: an event stamped more than
``max_skew_s`` (the ``max_clock_skew_s`` setting, minutes) ahead of it is a clock bug, not activity. This module
runs compiled with the detectors (:mod:`detectors.native`): :func:`decode_records` is the service's
per-record loop.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Final

import jiter
import orjson
from pydantic import ValidationError

from detectors.events import Catalog, Event, from_document
from stream.contract.models import INPUT_ADAPTER
from stream.errors import BadRecord

#: Records larger than this are refused before parsing (a contract event is well under 100 KiB).
MAX_RECORD_BYTES: Final = 1 << 20
#: Events stamped further ahead of the wall clock than this are refused by default (the service passes
#: its ``max_clock_skew_s``): clock bugs, not activity.
MAX_FUTURE_S: Final = 300.0
#: Events older than this epoch second (2000-01-01) are refused as corrupt.
MIN_TS: Final = 946_684_800.0

#: Records validated together before any of them is flattened, so that each stage's code stays in the
#: instruction cache for a whole chunk and the chunk's documents in the data caches until flattened
#: (docs/performance.md has the measurement).
DECODE_CHUNK: Final = 32
#: fills in what a validated document leaves out, in place (:class:`stream.enrich.Enricher`: the people
#: directory and the data catalog's patterns), before it is flattened
Enrich = Callable[[dict[str, Any]], None]
#: pydantic-core's validator itself: ``TypeAdapter.validate_python`` only forwards its default options
#: to it, one Python frame per record (about 0.5 us)
_validate: Final = INPUT_ADAPTER.validator.validate_python
#: the same validator straight from the bytes (the common case: see :func:`_plain`)
_validate_json: Final = INPUT_ADAPTER.validator.validate_json
_parse: Final = jiter.from_json
_PATTERN_MESSAGE: Final = "contains control, bidirectional or zero-width characters"


def decode(value: bytes | None, now: float, catalog: Catalog | None = None, enrich: Enrich | None = None,
           max_skew_s: float = MAX_FUTURE_S) -> Event:
    """Validate one record and flatten it into an :class:`Event`.

    ``catalog`` maps resource ids to ``(sensitivity, categories)`` for events that omit them;
    ``enrich`` fills in the validated document first.
    """
    return _event(validate(value), now, catalog, max_skew_s, enrich)


def validate(value: bytes | None) -> dict[str, Any]:
    """One record's contract document, validated (a dict, ``ts`` a datetime); BadRecord if refused."""
    if not value:
        raise BadRecord("empty", "record has no value")
    if len(value) > MAX_RECORD_BYTES:
        raise BadRecord("too_large", f"{len(value)} bytes > {MAX_RECORD_BYTES}")
    plain = _plain(value)
    if plain is not None:
        return plain
    try:
        parsed = _parse(value, allow_inf_nan=False, cache_mode="keys", catch_duplicate_keys=True)
    except ValueError as exc:
        message = str(exc)
        reason = "duplicate_key" if message.startswith("Detected duplicate key") else "malformed_json"
        raise BadRecord(reason, message[:200]) from None
    try:
        doc: dict[str, Any] = _validate(parsed)
    except ValidationError as exc:
        raise _bad(exc) from None
    return doc


def _plain(value: bytes) -> dict[str, Any] | None:
    """The document when ``value`` is plainly valid: no escapes, every key and string kept; else None
    (and :func:`validate` parses it again, refusing duplicate keys, to say why or to accept it).

    pydantic-core validates straight from the bytes, with no document of Python objects built first
    and no set of keys per object. What that parse cannot see, duplicate keys (the last one wins), is
    caught by counting: without a backslash every ``"`` in the bytes opens or closes a string, so
    there are two per key and per string value; the validated document holds at most as many of
    each (unknown keys are dropped, duplicates merge, ``ts`` becomes a datetime), and exactly as
    many only when nothing was dropped or merged.
    """
    if b"\\" in value:
        return None
    try:
        doc: dict[str, Any] = _validate_json(value)
    except ValidationError:
        return None
    if 2 * _strings(doc) != value.count(b'"'):
        return None
    return doc


def _strings(value: Any) -> int:
    """Keys and strings (datetimes parsed from strings count as one) in a validated document."""
    if isinstance(value, dict):
        n = len(value)
        for item in value.values():
            n += _strings(item)
        return n
    if isinstance(value, str):
        return 1
    if isinstance(value, datetime):
        return 1
    if isinstance(value, list):
        n = 0
        for item in value:
            n += _strings(item)
        return n
    return 0


def _event(doc: dict[str, Any], now: float, catalog: Catalog | None, max_skew_s: float,
           enrich: Enrich | None = None) -> Event:
    if enrich is not None:
        enrich(doc)
    event = from_document(doc, catalog)
    if event.ts > now + max_skew_s:
        raise BadRecord("future_timestamp", f"ts is {event.ts - now:.0f} s ahead of the wall clock "
                                            f"(max_clock_skew_s={max_skew_s:.0f})")
    if event.ts < MIN_TS:
        raise BadRecord("ancient_timestamp", "ts before 2000-01-01")
    return event


class Item:
    """One consumed record with its decoded event, or the BadRecord that refused it.

    A plain class, not a dataclass: compiled, a dataclass's constructor still ran the ``__init__``
    that the dataclasses module generates, in Python (about 2.2k instructions per record; this one,
    about 0.2k).
    """

    __slots__ = ("ts", "topic", "partition", "offset", "record", "payload", "arrived")

    def __init__(self, ts: float, topic: str, partition: int, offset: int, record: Any, payload: Any,
                 arrived: float) -> None:
        self.ts = ts
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.record = record
        self.payload = payload
        self.arrived = arrived


def decode_records(records: list[Any], topic: str, partition: int, now: float,
                   catalog: Catalog | None = None, enrich: Enrich | None = None,
                   max_skew_s: float = MAX_FUTURE_S) -> list[Item]:
    """Decode one topic-partition's records (kafka-python ``ConsumerRecord``s, in offset order) into
    merger items; a refused record's item carries its BadRecord, and sorts first. Records are
    validated :data:`DECODE_CHUNK` at a time, then flattened.

    >>> from collections import namedtuple
    >>> Record = namedtuple("Record", "value offset")
    >>> good = b'{"type":"access","event_id":"e1","ts":"2026-01-01T00:00:00Z","principal":{"id":"u"},' \\
    ...        b'"action":"read","resource":{"id":"r"},"outcome":"allowed"}'
    >>> items = decode_records([Record(good, 7), Record(b"{", 8)], "access", 2, now=1.8e9)
    >>> [(i.offset, type(i.payload).__name__, i.ts) for i in items]
    [(7, 'Event', 1767225600.0), (8, 'BadRecord', -inf)]
    """
    items: list[Item] = []
    for start in range(0, len(records), DECODE_CHUNK):
        chunk = records[start:start + DECODE_CHUNK]
        docs: list[dict[str, Any] | BadRecord] = []
        for record in chunk:
            try:
                docs.append(validate(record.value))
            except BadRecord as bad:
                docs.append(bad)
        for record, doc in zip(chunk, docs, strict=True):
            if not isinstance(doc, BadRecord):
                try:
                    event = _event(doc, now, catalog, max_skew_s, enrich)
                except BadRecord as bad:
                    doc = bad
                else:
                    items.append(Item(event.ts, topic, partition, record.offset, record, event, now))
                    continue
            items.append(Item(float("-inf"), topic, partition, record.offset, record, doc, now))
    return items


def _bad(exc: ValidationError) -> BadRecord:
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0] if errors else {"type": "invalid", "loc": (), "msg": str(exc)}
    where = ".".join(str(p) for p in first["loc"]) or "document"
    # a pattern's message would spell out the refused characters themselves
    why = _PATTERN_MESSAGE if first["type"] == "string_pattern_mismatch" else first["msg"]
    return BadRecord("schema", f"{where}: {why} ({len(errors)} error(s))")


def dumps(doc: Any) -> bytes:
    """Encode a document for Kafka or a JSONL line (orjson; datetimes as RFC 3339)."""
    return orjson.dumps(doc, option=orjson.OPT_UTC_Z)
