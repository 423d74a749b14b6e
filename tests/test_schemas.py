"""The pydantic models agree with the shared JSON Schemas on the examples and on invalid documents."""

from __future__ import annotations

import copy

import orjson
import pytest
from contract_schemas import validator
from factories import example
from pydantic import ValidationError

from stream.contract.models import INPUT_ADAPTER, Alert, Feedback


@pytest.mark.parametrize("name", ["access-event", "permission-event", "authentication-event"])
def test_examples_accepted_by_both(name):
    doc = example(name)
    assert not list(validator(name).iter_errors(doc))
    assert INPUT_ADAPTER.validate_json(orjson.dumps(doc))["event_id"] == doc["event_id"]


def test_alert_example_accepted_by_both():
    doc = example("alert")
    assert not list(validator("alert").iter_errors(doc))
    assert Alert.model_validate(doc).alert_id == doc["alert_id"]


def _mutate(name, path, value):
    doc = copy.deepcopy(example(name))
    target = doc
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return doc


_DELETE = object()

INVALID = [
    ("access-event", ("event_id",), _DELETE),
    ("access-event", ("event_id",), ""),
    ("access-event", ("event_id",), "x" * 129),
    ("access-event", ("ts",), _DELETE),
    ("access-event", ("ts",), "yesterday"),
    ("access-event", ("action",), "steal"),
    ("access-event", ("records",), -1),
    ("access-event", ("records",), "12"),
    ("access-event", ("records",), 1.5),
    ("access-event", ("outcome",), "maybe"),
    ("access-event", ("principal",), _DELETE),
    ("access-event", ("principal", "id"), ""),
    ("access-event", ("principal", "kind"), "robot"),
    ("access-event", ("resource", "sensitivity"), "secret"),
    ("access-event", ("resource", "id"), 42),
    ("access-event", ("subject_refs",), ["s"] * 1001),
    ("access-event", ("source", "country"), "TOO-LONG-1"),
    ("access-event", ("type",), "permission"),
    ("permission-event", ("change",), "steal"),
    ("permission-event", ("target",), _DELETE),
    ("permission-event", ("permission",), ""),
    ("permission-event", ("privileged",), "yes"),
    ("permission-event", ("actor", "id"), None),
    ("permission-event", ("actor", "admin"), "yes"),
    ("permission-event", ("provenance",), {"format": "cloudtrail"}),
    ("authentication-event", ("outcome",), "success"),
    ("authentication-event", ("principal",), _DELETE),
    ("authentication-event", ("mfa",), "yes"),
    ("authentication-event", ("method",), "x" * 65),
    ("authentication-event", ("provenance", "record_id"), ""),
    ("authentication-event", ("type",), "signin"),
    # tightened in v1.2 (stream/contract/CHANGES.md)
    ("access-event", ("ts",), 1_790_000_000),
    ("access-event", ("ts",), "1790000000"),
    ("access-event", ("ts",), "2026-11-26 09:14:03Z"),
    ("access-event", ("ts",), "2026-11-26T09:14:03"),
    ("access-event", ("principal", "id"), "u-1\u202egnp.exe"),
    ("access-event", ("principal", "id"), "u-1\u0000"),
    ("access-event", ("resource", "id"), "hr\u200b.pay"),
    ("access-event", ("source", "user_agent"), "curl\u001b[2J"),
    ("permission-event", ("permission",), "admin\u2066"),
    ("permission-event", ("target", "id"), "\ufeffu-7"),
    ("authentication-event", ("ts",), "2026-11-26T09:14:03"),
    ("authentication-event", ("event_id",), "e\u202e1"),
    ("authentication-event", ("application", "name"), "app\u200b"),
]


@pytest.mark.parametrize(("name", "path", "value"), INVALID, ids=[f"{n}:{'.'.join(p)}" for n, p, _ in INVALID])
def test_invalid_documents_rejected_by_both(name, path, value):
    doc = _mutate(name, path, value)
    assert list(validator(name).iter_errors(doc)), "the JSON Schema should reject this"
    with pytest.raises(ValidationError):
        INPUT_ADAPTER.validate_json(orjson.dumps(doc))


def test_unknown_extra_fields_are_allowed_and_ignored():
    doc = example("access-event") | {"tenant": "acme", "nested": {"x": 1}}
    assert not list(validator("access-event").iter_errors(doc))
    assert "tenant" not in INPUT_ADAPTER.validate_json(orjson.dumps(doc))


def test_a_paging_alert_carries_its_incident_in_both():
    doc = example("alert-paging")
    assert not list(validator("alert").iter_errors(doc))
    assert Alert.model_validate(doc).incident is not None
    broken = copy.deepcopy(doc)
    broken["incident"]["updates"] = 0
    assert list(validator("alert").iter_errors(broken))
    with pytest.raises(ValidationError):
        Alert.model_validate(broken)


def test_feedback_example_accepted_by_both():
    doc = example("feedback")
    assert not list(validator("feedback").iter_errors(doc))
    assert Feedback.model_validate(doc).verdict_id == doc["verdict_id"]


def test_a_suppressed_alert_is_accepted_by_both():
    doc = example("alert") | {"level": "info", "suppressed_by": {
        "verdict_id": "5f0c7a2e9b4d4e1f8a3c6b2d1e0f9a8b", "verdict": "benign", "scope": "resource",
        "analyst": "alice", "until": "2026-12-03T10:02:00.000Z", "resource_id": "customers.payment_methods"}}
    assert not list(validator("alert").iter_errors(doc))
    assert Alert.model_validate(doc).suppressed_by is not None


FEEDBACK_INVALID = [
    ("signature", _DELETE), ("signature", "c2ln"), ("verdict_id", "short"), ("verdict", "ignore"),
    ("scope", "everyone"), ("scope", "resource"), ("verdict", "revoke"), ("ts", "yesterday"),
    ("ts", "2026-11-26T10:02:00"), ("expires", _DELETE), ("key_id", "bad key id"), ("analyst", ""),
    ("alert_id", ""), ("note", "n" * 2001), ("resource_id", ""),
]
ALERT_INVALID = [("alert_id", "volume:u-4821:01JD8XC1R8VN"), ("alert_id", "volume:u:e:NOTHEX0123456789"),
                 ("suppressed_by", {"verdict": "benign"})]


@pytest.mark.parametrize(("name", "field", "value"), [("feedback", f, v) for f, v in FEEDBACK_INVALID]
                         + [("alert", f, v) for f, v in ALERT_INVALID],
                         ids=[f"feedback:{f}" for f, _ in FEEDBACK_INVALID] + [f"alert:{f}" for f, _ in ALERT_INVALID])
def test_invalid_feedback_and_alerts_rejected_by_both(name, field, value):
    doc = _mutate(name, (field,), value)
    assert list(validator(name).iter_errors(doc)), "the JSON Schema should reject this"
    with pytest.raises(ValidationError):
        (Feedback if name == "feedback" else Alert).model_validate(doc)
