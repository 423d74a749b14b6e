"""The organisation simulator: contract-valid, labelled, ordered, deterministic."""

from __future__ import annotations

import argparse
import hashlib
from collections import Counter
from pathlib import Path

import orjson
import pytest
from contract_schemas import REGISTRY, SCHEMAS, validator
from jsonschema import Draft202012Validator

from stream.simulate import BENIGN_KINDS, INCIDENT_KINDS, simulate
from stream.simulate import cli as simulate_cli
from stream.simulate.output import Pacer, event_key


@pytest.fixture(scope="module")
def small():
    """Small enough to validate every event with jsonschema, every incident kind forced."""
    return simulate(seed=11, principals=20, days=9, incidents=10, baseline_days=4)


@pytest.fixture(scope="module")
def medium():
    return simulate(seed=7, principals=60, days=12, incidents=12, baseline_days=5)


NESTED = {"principal": "principal", "actor": "principal", "target": "principal", "resource": "resource",
          "source": "source"}


def _shallow(name: str) -> Draft202012Validator:
    """The contract schema with nested objects reduced to ``object``: they are checked separately."""
    schema = dict(SCHEMAS[name], properties=dict(SCHEMAS[name]["properties"]))
    for key in NESTED:
        if key in schema["properties"]:
            schema["properties"][key] = {"type": "object"}
    return Draft202012Validator(schema, registry=REGISTRY, format_checker=Draft202012Validator.FORMAT_CHECKER)


def assert_valid(events: list[dict]) -> None:
    """Every event, in two exact steps: the top level of each event, then each distinct nested
    principal/resource/source object (the simulator shares them between events) against its $def.
    The schemas have no constraints across levels, so this equals full validation, only faster."""
    tops = {"access": _shallow("access-event"), "permission": _shallow("permission-event")}
    defs = {d: Draft202012Validator({"$ref": f"urn:privwatch:access-event:v1#/$defs/{d}"}, registry=REGISTRY)
            for d in set(NESTED.values())}
    nested: dict[int, tuple[str, dict]] = {}
    for e in events:
        errors = list(tops[e["type"]].iter_errors(e))
        assert not errors, (e, errors[0].message)
        for key, d in NESTED.items():
            if key in e:
                nested[id(e[key])] = (d, e[key])
    for d, obj in nested.values():
        errors = list(defs[d].iter_errors(obj))
        assert not errors, (obj, errors[0].message)


def test_every_event_validates_against_the_contract(small):
    events, _ = small
    assert_valid(events)
    assert {e["type"] for e in events} == {"access", "permission"}


def test_full_validation_on_a_sample(small):
    events, _ = small
    full = {"access": validator("access-event"), "permission": validator("permission-event")}
    for e in events[::50] + [e for e in events if e["type"] == "permission"]:
        errors = list(full[e["type"]].iter_errors(e))
        assert not errors, (e, errors[0].message)


def test_labelled_events_of_medium_org_validate(medium):
    events, labels = medium
    labelled = {eid for lab in labels for eid in lab["event_ids"]}
    assert_valid([e for e in events if e["event_id"] in labelled or e["type"] == "permission"])


@pytest.mark.parametrize("fixture", ["small", "medium"])
def test_every_kind_appears_and_labels_point_at_real_events(fixture, request):
    events, labels = request.getfixturevalue(fixture)
    by_id = {e["event_id"]: e for e in events}
    assert len(by_id) == len(events), "event ids are unique"
    kinds = Counter((lab["label"], lab["kind"]) for lab in labels)
    assert {k for (label, k) in kinds if label == "incident"} == set(INCIDENT_KINDS)
    assert {k for (label, k) in kinds if label == "benign"} == set(BENIGN_KINDS)
    for lab in labels:
        assert lab["event_ids"], lab["label_id"]
        assert all(eid in by_id for eid in lab["event_ids"])
        assert lab["start"] <= lab["end"] and lab["start"].endswith("Z")
        assert all(lab["start"] <= by_id[eid]["ts"] <= lab["end"] for eid in lab["event_ids"])


def test_events_are_in_event_time_order_and_utc(medium):
    events, _ = medium
    stamps = [e["ts"] for e in events]
    assert stamps == sorted(stamps)
    assert all(ts.endswith("Z") and len(ts) == 24 for ts in stamps)


def test_incidents_start_after_the_baseline_period(medium):
    _, labels = medium
    for lab in labels:
        if lab["label"] == "incident":
            assert lab["start"] >= "2026-10-06", lab


def test_realistic_shape(medium):
    events, labels = medium
    access = [e for e in events if e["type"] == "access"]
    services = [e for e in access if e["principal"]["kind"] == "service"]
    assert services and {e["principal"]["id"][:4] for e in services} == {"svc-"}
    assert all(len({(e["source"]["user_agent"], e["source"]["device_id"])
                    for e in services if e["principal"]["id"] == sid}) <= 2
               for sid in {e["principal"]["id"] for e in services})
    lookups = [e for e in access if e.get("subject_refs")]
    assert lookups and all(r.startswith("s-") for e in lookups for r in e["subject_refs"])
    assert 0 < sum(e["outcome"] == "denied" for e in access) < 0.02 * len(access)
    incident_ids = {eid for lab in labels if lab["label"] == "incident" for eid in lab["event_ids"]}
    grants = [e for e in events if e["type"] == "permission" and e["event_id"] not in incident_ids]
    assert sum(bool(g["ticket"]) for g in grants) > 0.6 * len(grants)
    snoop = next(lab for lab in labels if lab["kind"] == "snooping")
    assert len(snoop["event_ids"]) >= 300


def _digest(seed: int) -> str:
    events, labels = simulate(seed=seed, principals=20, days=9, baseline_days=4)
    return hashlib.sha256(b"".join(orjson.dumps(x) for x in events + labels)).hexdigest()


def test_same_seed_same_bytes_different_seed_different_org():
    assert _digest(5) == _digest(5)
    assert _digest(5) != _digest(6)


def test_cli_writes_files_deterministically(tmp_path: Path):
    parser = argparse.ArgumentParser()
    simulate_cli.register(parser.add_subparsers())
    outputs = []
    for name in ("a", "b"):
        args = parser.parse_args(["simulate", "--seed", "3", "--principals", "20", "--days", "9",
                                  "--baseline-days", "4", "--output", str(tmp_path / name)])
        assert args.func(args) == 0
        files = ("events.jsonl", "labels.jsonl", "meta.json")
        outputs.append([(tmp_path / name / f).read_bytes() for f in files])
    assert outputs[0] == outputs[1]
    meta = orjson.loads(outputs[0][2])
    assert meta["counts"]["events"] == outputs[0][0].count(b"\n")


def test_kafka_keys_and_pacing():
    access = {"type": "access", "principal": {"id": "u-0001"}, "ts": "2026-10-01T00:00:00Z"}
    perm = {"type": "permission", "target": {"id": "u-0002"}, "actor": {"id": "u-0003"},
            "ts": "2026-10-01T01:00:00Z"}
    assert event_key(access) == b"u-0001" and event_key(perm) == b"u-0002"
    slept: list[float] = []
    pacer = Pacer(speedup=3600.0, sleep=slept.append, clock=lambda: 0.0)
    pacer.wait(access)
    pacer.wait(perm)
    assert slept == [pytest.approx(1.0)]
