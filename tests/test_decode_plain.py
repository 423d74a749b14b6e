"""Decoding's one-parse path (:func:`stream.contract.decode._plain`) gives exactly what the strict
parse gives (the same document, or the same refusal), and it is the path plain records take."""

from __future__ import annotations

import time

import jiter
import orjson
import pytest
from factories import access, permission
from pydantic import ValidationError

from stream.contract.decode import _bad, _plain, validate
from stream.contract.models import INPUT_ADAPTER
from stream.errors import BadRecord

NOW = time.time()
PLAIN = orjson.dumps(access("e1", NOW) | {"source": {"ip": "10.0.0.1", "country": "GB"},
                                          "subject_refs": ["s-1", "s-2"], "purpose": "ticket: 7"})


def _strict(value: bytes) -> object:
    """What decoding answered before the one-parse path: duplicate keys refused by the parse."""
    try:
        parsed = jiter.from_json(value, allow_inf_nan=False, cache_mode="keys", catch_duplicate_keys=True)
    except ValueError as exc:
        message = str(exc)
        return ("duplicate_key" if message.startswith("Detected duplicate key") else "malformed_json", message[:200])
    try:
        return INPUT_ADAPTER.validator.validate_python(parsed)
    except ValidationError as exc:
        bad = _bad(exc)
        return bad.reason, bad.detail


def _answer(value: bytes) -> object:
    try:
        return validate(value)
    except BadRecord as bad:
        return bad.reason, bad.detail


def _variants() -> list[bytes]:
    p = PLAIN
    return [
        p,
        orjson.dumps(permission("p1", NOW)),
        p.replace(b'"action":', b'"action":"read","action":'),  # duplicate key
        p.replace(b'"action":', b'"action" : "read", "action":'),  # duplicate, spaced so a '":' count misses it
        p.replace(b'"action":', b'"action"\n:"read",\t"action"\r:'),
        p.replace(b'"id":', b'"id":"x","id":', 1),  # duplicate inside the principal
        p.replace(b'{"type"', b'{"zz":1,"zz":2,"type"'),  # duplicate unknown key
        p.replace(b'{"type"', b'{"zz":"a","type"'),  # unknown key, kept out of the document
        p.replace(b'{"type"', b'{"zz":NaN,"type"'),
        p.replace(b'"read"', b'"re\xffad"'),  # not UTF-8
        b"\xef\xbb\xbf" + p,
        b" " + p + b" ",
        p.replace(b'"records":', b'"records":1e400,"x":'),
        p.replace(b'"principal":{', b'"principal":{"id":"a","id":"a",'),
        p.replace(b'"principal":{', b'"principal":{"id":"a", "id" :"a",'),
        p.replace(b'"subject_refs":[', b'"subject_refs":[{"a":"b"},'),
        p.replace(b'"type":"access"', b'"type":"access","type":"access"'),
        p.replace(b'"purpose":', b'"purpose":":x","purpose":'),  # a string opening with a colon
        p.replace(b'"e1"', b'"e\\u0031"'),  # escapes take the strict path
        p.replace(b'"e1"', b'"e\\"1"'),
        p.replace(b'"e1"', b'"e1","event_id":"e\\u0031"'),
        p.replace(b'"records":', b'"records":"5","x":'),
        b"{}", b"[]", b'"x"', b"null", p[:-1], p + b"}",
    ]


@pytest.mark.parametrize("value", _variants())
def test_one_parse_answers_as_the_strict_parse(value):
    strict, answer = _strict(value), _answer(value)
    assert answer == strict
    assert repr(answer) == repr(strict)  # same offsets on the date-times, same key order


def test_plain_records_take_one_parse_and_duplicates_never_do():
    assert _plain(PLAIN) is not None
    assert _plain(orjson.dumps(permission("p1", NOW))) is not None
    for value in _variants()[2:7]:
        assert _plain(value) is None, value
