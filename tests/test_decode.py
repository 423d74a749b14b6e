"""Bad input never crashes decoding: each kind becomes a BadRecord with a low-cardinality reason."""

from __future__ import annotations

import json
import random
import time
from collections import namedtuple
from dataclasses import MISSING, Field, astuple, fields, replace
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from factories import access, example, permission

from detectors.events import Event, from_document
from stream.contract.decode import DECODE_CHUNK, MAX_RECORD_BYTES, decode, decode_records
from stream.errors import BadRecord

NOW = time.time()
Record = namedtuple("Record", "value offset")


def _reason(value):
    with pytest.raises(BadRecord) as info:
        decode(value, NOW)
    return info.value.reason


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "empty"),
        (b"", "empty"),
        (b"{not json", "malformed_json"),
        (b"\xff\xfe\x00garbage", "malformed_json"),
        (b"[1, 2, 3]", "schema"),
        (b'"just a string"', "schema"),
        (b"{}", "schema"),
        (orjson.dumps(access("e", NOW) | {"records": "many"}), "schema"),
        (json.dumps(access("e", NOW) | {"records": 10**30}).encode(), "schema"),
        (orjson.dumps(access("e", NOW) | {"bytes": 1e308}), "schema"),
        (orjson.dumps({k: v for k, v in access("e", NOW).items() if k != "principal"}), "schema"),
        (orjson.dumps(access("e", NOW + 400 * 86_400)), "future_timestamp"),
        (b'{"a": NaN}', "malformed_json"),
        (orjson.dumps(access("e", NOW) | {"ts": "1970-01-01T00:00:00Z"}), "ancient_timestamp"),
        (orjson.dumps(access("e", NOW) | {"ts": "2026-11-26T09:14:03"}), "schema"),  # no offset
        (b" " * (MAX_RECORD_BYTES + 1), "too_large"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_bad_input_has_a_reason(value, reason):
    assert _reason(value) == reason


def test_a_batch_decodes_in_chunks_as_record_by_record():
    """decode_records validates a chunk of records before flattening them: each item must still be
    its own record's, in offset order, good or bad, across chunk boundaries."""
    rng = random.Random(7)
    bad = [b"{not json", b"{}", orjson.dumps(access("f", NOW + 400 * 86_400)), b""]
    values = [rng.choice(bad) if rng.random() < 0.2 else orjson.dumps(access(f"e{i}", NOW - i, principal=f"u{i}"))
              for i in range(3 * DECODE_CHUNK + 5)]
    records = [Record(value, 100 + i) for i, value in enumerate(values)]
    items = decode_records(records, "access", 1, NOW)
    assert [(item.offset, item.record) for item in items] == [(r.offset, r) for r in records]
    for item, value in zip(items, values, strict=True):
        try:
            expected: Event | BadRecord = decode(value, NOW)
        except BadRecord as refused:
            expected = refused
        if isinstance(expected, BadRecord):
            assert isinstance(item.payload, BadRecord) and item.payload.reason == expected.reason
            assert item.ts == float("-inf")
        else:
            assert astuple(item.payload) == astuple(expected) and item.ts == expected.ts
    assert sum(isinstance(item.payload, BadRecord) for item in items) > 5


def test_odd_but_printable_unicode_is_fine():
    doc = access("e-ü", NOW, principal="u-😀-Zoë 山田") | {"purpose": "𝔣𝔬𝔬 \ud7ff"}
    event = decode(orjson.dumps(doc), NOW)
    assert event.principal_id == "u-😀-Zoë 山田"


@pytest.mark.parametrize("hidden", ["\u0000", "\x1b[31m", "\u202e", "\u2066", "\u200b", "\u200f", "\ufeff",
                                    "\u2028", "\u0085", "\u00ad"])
def test_ids_with_control_bidirectional_or_zero_width_characters_are_refused(hidden):
    for doc in (access("e", NOW, principal=f"u-1{hidden}x"), access(f"e{hidden}", NOW),
                access("e", NOW) | {"resource": {"id": f"hr{hidden}.pay"}},
                permission("p", NOW, target=f"u{hidden}"), permission("p", NOW, permission=f"admin{hidden}")):
        with pytest.raises(BadRecord) as refused:
            decode(orjson.dumps(doc), NOW)
        assert refused.value.reason == "schema"
        assert "control, bidirectional or zero-width" in refused.value.detail


def test_duplicate_keys_are_refused_at_any_depth():
    raw = orjson.dumps(access("e", NOW, principal="u-victim"))
    twice = raw.replace(b'"principal":{', b'"principal":{"id":"u-other"},"principal":{', 1)
    nested = raw.replace(b'"id":"u-victim"', b'"id":"u-victim","id":"u-other"', 1)
    for value in (twice, nested, b'{"type":"access","type":"access"}'):
        with pytest.raises(BadRecord) as refused:
            decode(value, NOW)
        assert refused.value.reason == "duplicate_key", value


@pytest.mark.parametrize("ts", [1_790_000_000, "1790000000", "2026-11-26 09:14:03", "2026-11-26T09:14Z",
                                "2026-11-26T09:14:03+0100", "2026-11-26", "26/11/2026 09:14:03Z",
                                "2026-11-26T09:14:03.1234567890Z", "NaN"])
def test_ts_is_rfc3339_with_an_offset_or_refused(ts):
    with pytest.raises(BadRecord) as refused:
        decode(orjson.dumps(access("e", NOW) | {"ts": ts}), NOW)
    assert refused.value.reason == "schema" and "RFC 3339" in refused.value.detail


def test_rfc3339_variants_with_an_offset_are_accepted():
    for ts in ("2026-11-26T09:14:03Z", "2026-11-26t09:14:03z", "2026-11-26T09:14:03.5+01:00",
               "2026-11-26T09:14:03.123456-05:30"):
        assert decode(orjson.dumps(access("e", NOW) | {"ts": ts}), 2e9).tz_offset_s in (0, 3600, -19800)


def test_the_clock_skew_bound_is_a_setting():
    ahead = orjson.dumps(access("e", NOW + 3 * 3600))
    with pytest.raises(BadRecord, match="future_timestamp"):
        decode(ahead, NOW)  # the default: five minutes
    assert decode(ahead, NOW, max_skew_s=4 * 3600).event_id == "e"
    assert decode(orjson.dumps(access("e", NOW + 240)), NOW).event_id == "e"


def test_lone_surrogate_escape_is_refused_not_crashing():
    raw = orjson.dumps(access("e", NOW)).replace(b'"u-4821"', b'"\\ud800"', 1)
    try:
        decode(raw, NOW)
    except BadRecord as bad:
        assert bad.reason in {"malformed_json", "schema"}


def test_permission_event_is_attributed_to_its_target():
    event = decode(orjson.dumps(permission("p1", NOW, target="u-7")), NOW)
    assert (event.kind, event.principal_id, event.actor_id) == ("permission", "u-7", "u-1002")


def test_catalog_fills_missing_classification():
    doc = example("access-event")
    doc["ts"] = "2026-11-26T09:14:03Z"
    doc["resource"] = {"id": "hr.salaries"}
    event = decode(orjson.dumps(doc), NOW, {"hr.salaries": ("restricted", ("pii.hr",))})
    assert (event.sensitivity, event.categories) == ("restricted", ("pii.hr",))


def test_time_zone_offset_is_kept_for_local_hours():
    doc = access("e", NOW) | {"ts": "2026-11-26T09:14:03+05:30"}
    event = decode(orjson.dumps(doc), NOW)
    assert event.tz_offset_s == 5 * 3600 + 1800


@pytest.mark.parametrize("offset", ["Z", "+05:30", "-03:00", "+14:00", "-12:00", "+00:00"])
def test_epoch_seconds_are_exactly_those_of_datetime_timestamp(offset):
    # from_document computes them from the fields, not by ts.timestamp(): the float must be the same
    # (the far-future one takes the fallback, which must agree too)
    stamps = ["2000-01-01T00:00:00", "2026-02-28T23:59:59.999999", "2028-02-29T12:00:00.000001",
              "2026-11-26T09:14:03.547", "2038-01-19T03:14:07.5", "1999-12-31T23:59:59.123456",
              "2299-06-30T01:02:03.999999"]
    for stamp in stamps:
        doc = access("e", NOW) | {"ts": stamp + offset}
        expected = datetime.fromisoformat(doc["ts"].replace("Z", "+00:00"))
        try:
            event = decode(orjson.dumps(doc), 1e11)
        except BadRecord as bad:
            assert bad.reason == "ancient_timestamp" and expected.timestamp() < 946_684_800
            continue
        assert (event.ts, event.tz_offset_s) == (expected.timestamp(), int(expected.utcoffset().total_seconds()))


def test_epoch_seconds_match_datetime_timestamp_on_random_times():
    # every microsecond and offset the arithmetic in doubles could round differently from timestamp()
    rng = random.Random(8)
    for _ in range(3000):
        when = datetime.fromtimestamp(rng.uniform(946_684_800, 4_102_444_800), UTC).replace(
            microsecond=rng.randrange(1_000_000))
        sign, minutes = rng.choice("+-"), rng.randrange(0, 14 * 60 + 1)
        stamp = when.strftime("%Y-%m-%dT%H:%M:%S.%f") + f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"
        expected = datetime.fromisoformat(stamp)
        event = decode(orjson.dumps(access("e", NOW) | {"ts": stamp}), 1e11)
        assert (event.ts, event.tz_offset_s) == (expected.timestamp(), int(expected.utcoffset().total_seconds()))


def test_a_zone_with_daylight_saving_gives_each_time_its_own_offset():
    # fixed offsets are memoised by zone; a zone whose offset changes with the date must not be
    doc = orjson.loads(orjson.dumps(access("e", NOW)))
    for month, hours in ((1, 0), (7, 1), (1, 0)):
        ts = datetime(2026, month, 15, 12, tzinfo=ZoneInfo("Europe/London"))
        event = from_document(doc | {"ts": ts})
        assert (event.ts, event.tz_offset_s) == (ts.timestamp(), hours * 3600)


def test_contract_examples_flatten_field_by_field():
    access_doc, permission_doc = example("access-event"), example("permission-event")
    e = decode(orjson.dumps(access_doc), NOW)
    assert astuple(e) == (
        "access", "01JD8X6T3K7Q", 1_795_684_443.12, "u-4821", "human", "support", "agent", 0, "read",
        "customers.profile", "table", "restricted", ("pii.contact",), 1, 812, 1, ("s-9f1c2a",), "allowed",
        "10.1.20.7", "GB", "lt-4821", "Mozilla/5.0", "ticket-88123", None, None, None, None, None, False, None,
        None, None, None, None,
    )
    p = decode(orjson.dumps(permission_doc), NOW)
    assert astuple(p) == (
        "permission", "01JD8X9B0Z2M", 1_795_684_841.0, "u-4821", "human", "support", "agent", 0, "",
        "customers.payment_methods", "table", "restricted", ("pii.financial",), 0, 0, 0, (), "allowed",
        "10.9.0.4", "GB", None, None, None, "u-1002", "admin", "it_admin", "grant",
        "read:customers.payment_methods", False, "CHG-20931", None, None, None, None,
    )
    a = decode(orjson.dumps(example("authentication-event")), NOW)
    assert astuple(a) == (
        "authentication", "entra:5f3b1c2e-7d41-4a0b-9c55-0b1e2d3f4a5b", 1_795_683_552.0, "u-4821", "human",
        "support", "agent", 0, "", "", None, None, (), 0, 0, 0, (), "allowed", "10.1.20.7", "GB", "lt-4821",
        "Mozilla/5.0", None, None, None, None, None, None, False, None, None, "password", True,
        "00000003-0000-0000-c000-000000000000",
    )
    assert e.ts == datetime.fromisoformat(access_doc["ts"]).timestamp()


def _sample(f: Field, i: int) -> Any:
    """A value of the field's type, distinct from every other field's and from its default."""
    if f.name == "ts":
        return float(i)
    if isinstance(f.default, bool):
        return not f.default
    if f.name in ("actor_admin", "mfa"):  # bool | None: known or unknown (compiled, f.type says only "type")
        return True
    if isinstance(f.default, int):
        return i
    return (f.name,) if isinstance(f.default, tuple) else f"{f.name}-{i}"


def test_event_constructor_takes_its_fields_in_order_with_their_defaults():
    """Event's ``__init__`` is written out (compiled natively): it must match the dataclass fields."""
    fs = fields(Event)
    values = [_sample(f, i) for i, f in enumerate(fs)]
    by_position, by_name = Event(*values), Event(**{f.name: v for f, v in zip(fs, values, strict=True)})
    assert astuple(by_position) == astuple(by_name) == tuple(values)
    required = [f for f in fs if f.default is MISSING]
    minimal = Event(*values[: len(required)])
    assert astuple(minimal)[len(required):] == tuple(f.default for f in fs[len(required):])
    assert replace(by_position, ip="10.0.0.1").ip == "10.0.0.1" and replace(by_position, ip="x") != by_position
