"""Bad input never crashes decoding: each kind becomes a BadRecord with a low-cardinality reason."""

from __future__ import annotations

import json
import time

import orjson
import pytest
from factories import access, example, permission

from stream.decode import MAX_RECORD_BYTES, decode
from stream.errors import BadRecord

NOW = time.time()


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
        (orjson.dumps(access("e", NOW) | {"ts": "1970-01-01T00:00:00Z"}), "ancient_timestamp"),
        (orjson.dumps(access("e", NOW) | {"ts": "2026-11-26T09:14:03"}), "schema"),  # no offset
        (b" " * (MAX_RECORD_BYTES + 1), "too_large"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_bad_input_has_a_reason(value, reason):
    assert _reason(value) == reason


def test_odd_unicode_is_fine():
    doc = access("e-ü", NOW, principal="u-😀-\u202e-\u0000x") | {"purpose": "𝔣𝔬𝔬 \ud7ff"}
    event = decode(orjson.dumps(doc), NOW)
    assert event.principal_id == "u-😀-\u202e-\u0000x"


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
