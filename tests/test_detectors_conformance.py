"""Conformance checks generated for every registered detector (in the spirit of ``river.checks``):
clone independence, no mutation by scoring, tolerance of missing fields and unrelated event kinds,
seeded determinism and bounded memory."""

from __future__ import annotations

import copy
import pickle
from dataclasses import astuple, replace

import pytest
from detector_streams import DAY, T0, grant, routine

from detectors.base import Detector, Profile
from detectors.engine import Engine, EngineConfig
from detectors.events import Event
from detectors.registry import REGISTRY

NAMES = sorted(REGISTRY)


@pytest.fixture(scope="module")
def stream() -> list[Event]:
    """Routine plus a few oddities, so that finding paths run too."""
    events = routine(seed=3, days=8, per_day=12)
    agent = next(e for e in events if e.principal_id == "su-000")
    odd = [
        replace(agent, event_id="odd-bulk", ts=T0 + 7.5 * DAY, action="export", records=400_000),
        replace(
            agent,
            event_id="odd-ctx",
            ts=T0 + 7.6 * DAY,
            country="KP",
            ip="203.0.113.9",
            device_id="x",
            user_agent="curl/8",
        ),
        replace(
            agent,
            event_id="odd-health",
            ts=T0 + 7.7 * DAY,
            resource_id="hr.medical_leave",
            categories=("health",),
            sensitivity="restricted",
        ),
        grant(
            agent,
            "odd-self",
            T0 + 7.8 * DAY,
            actor=agent.principal_id,
            actor_role="agent",
            actor_department="support",
            privileged=True,
            ticket=None,
            permission="role:dba",
        ),
    ]
    odd += [
        replace(
            agent,
            event_id=f"odd-deny-{i}",
            ts=T0 + 7.9 * DAY + i * 20,
            outcome="denied",
            resource_id=f"r-{i}",
            records=0,
        )
        for i in range(12)
    ]
    return sorted(events + odd, key=lambda e: e.ts)


def profiles_for(events: list[Event]) -> dict[str, Profile]:
    out: dict[str, Profile] = {}
    for e in events:
        out.setdefault(
            e.principal_id,
            Profile(first_ts=e.ts, last_ts=e.ts, peer_group=e.peer_group, kind=e.principal_kind),
        )
    return out


def feed(detector: Detector, events: list[Event], check_every: int = 0) -> int:
    """Score then learn each event; every ``check_every`` events, assert that scoring changed neither
    the detector nor the event. Returns the number of findings."""
    profiles = profiles_for(events)
    findings = 0
    for i, event in enumerate(events):
        profile = profiles[event.principal_id]
        check = check_every and (i % check_every == 0 or event.event_id.startswith(("odd", "n")))
        if check:
            before_state, before_event = pickle.dumps(detector), astuple(event)
        finding = detector.score_one(event, profile)
        if check:
            assert pickle.dumps(detector) == before_state, f"score_one changed state at {event.event_id}"
            assert astuple(event) == before_event, "score_one changed the event"
        findings += finding is not None
        detector.learn_one(event, profile, flagged=False)
        profile.n_events += 1
        profile.last_ts = max(profile.last_ts, event.ts)
    return findings


@pytest.mark.parametrize("name", NAMES)
def test_clone_is_unfitted_and_independent(name: str, stream: list[Event]) -> None:
    detector = REGISTRY[name]()
    fresh = pickle.dumps(detector.clone())
    feed(detector, stream[:2000])
    clone = detector.clone()
    assert repr(clone) == repr(detector)
    assert pickle.dumps(clone) == fresh, "a clone must be unfitted"
    feed(detector, stream[2000:2500])
    assert pickle.dumps(clone) == fresh, "learning on the original must not touch the clone"


@pytest.mark.parametrize("name", NAMES)
def test_score_one_mutates_neither_state_nor_event(name: str, stream: list[Event]) -> None:
    detector = REGISTRY[name]()
    feed(detector, stream, check_every=97 if name != "multivariate" else 499)


@pytest.mark.parametrize("name", NAMES)
def test_missing_fields_and_other_event_kinds_are_tolerated(name: str) -> None:
    detector = REGISTRY[name]()
    bare = [
        Event(kind="access", event_id=f"a{i}", ts=T0 + i * 600.0, principal_id="p", action="read")
        for i in range(200)
    ]
    odd = [
        Event(
            kind="access",
            event_id="n1",
            ts=T0 + 2 * DAY,
            principal_id="p",
            action="export",
            records=10**6,
            country=None,
            ip=None,
            device_id=None,
            user_agent=None,
            categories=(),
            department=None,
        ),
        Event(
            kind="access",
            event_id="n2",
            ts=T0 + 2 * DAY,
            principal_id="q",
            principal_kind="service",
            action="download",
            outcome="denied",
            ip="::1",
            subject_refs=("s",) * 5,
        ),
        Event(
            kind="permission",
            event_id="n3",
            ts=T0 + 2 * DAY,
            principal_id="p",
            change="grant",
            permission="role:x",
            privileged=True,
        ),
        Event(
            kind="permission",
            event_id="n4",
            ts=T0 + 2 * DAY,
            principal_id="p",
            change="revoke",
            actor_id="p",
            outcome="denied",
        ),
        Event(
            kind="access",
            event_id="n5",
            ts=T0 + 90 * DAY,
            principal_id="p",
            action="weird",
            records=0,
            sensitivity="restricted",
            categories=("health", "unheard-of"),
            tz_offset_s=-36_000,
        ),
    ]
    feed(detector, bare + odd, check_every=1 if name != "multivariate" else 50)


@pytest.mark.parametrize("name", NAMES)
def test_seeded_determinism(name: str, stream: list[Event]) -> None:
    def alerts() -> list[dict]:
        engine = Engine(EngineConfig(detectors=[name]))
        return [a for e in stream for a in engine.process(e)]

    assert alerts() == alerts()


@pytest.mark.parametrize("name", NAMES)
def test_memory_is_bounded(name: str) -> None:
    """5,000 principals × 3 events stay under a per-principal budget, and forgetting them (or, for
    the dormancy map, its own long TTL) gives the memory back."""
    detector = REGISTRY[name]()
    empty = len(pickle.dumps(detector))
    events = [
        Event(
            kind="access",
            event_id=f"m{i}-{j}",
            ts=T0 + j * 3600.0 + i * 0.01,
            principal_id=f"u-{i}",
            principal_kind="service" if i % 25 == 0 else "human",
            department=f"d{i % 10}",
            role="r",
            action="export" if j == 2 else "read",
            resource_id=f"res-{i % 40}",
            sensitivity="confidential",
            categories=("pii.contact",),
            records=5 + j,
            subject_refs=(f"s-{i}-{j}",),
            ip=f"10.0.{i % 250}.1",
            country="GB",
            device_id=f"d-{i}",
            user_agent="Mozilla/5.0",
            outcome="denied" if j == 1 else "allowed",
        )
        for j in range(3)
        for i in range(5000)
    ]
    feed(detector, events)
    peak = len(pickle.dumps(detector))
    per_principal = (peak - empty) / 5000
    assert per_principal < 2048, f"{per_principal:.0f} bytes per principal"
    for i in range(5000):
        detector.forget(f"u-{i}")
    later = Event(kind="access", event_id="late", ts=T0 + 500 * DAY, principal_id="late", action="read")
    feed(detector, [later])
    detector.forget("late")
    # what stays is population-level (peer baselines, a fixed-size model), not per principal
    assert len(pickle.dumps(detector)) < max(empty + 64 * 1024, peak / 4)


def test_registry_covers_the_catalogue() -> None:
    expected = {
        "volume",
        "slow_exfiltration",
        "subjects",
        "novelty",
        "context",
        "privilege",
        "dormancy",
        "denied",
        "service_misuse",
        "multivariate",
        "drift",
    }
    assert expected <= set(REGISTRY)
    for cls in REGISTRY.values():
        assert copy.deepcopy(cls()).name == cls.name


def _canonical(detector: Detector) -> tuple[dict, dict]:
    """A detector's state in a form that does not depend on the order principals were added in."""
    per_principal = {name: {pid: pickle.dumps(value) for pid, value in getattr(detector, name).items()}
                     for name in detector.per_principal}
    shared = {name: pickle.dumps(value) for name, value in detector.shared_state().items()}
    return per_principal, shared


def _findings(detector: Detector, events: list[Event]) -> list[tuple[str, float]]:
    profiles = profiles_for(events)
    found = []
    for event in events:
        finding = detector.score_one(event, profiles[event.principal_id])
        if finding is not None:
            found.append((event.event_id, round(finding.score, 9)))
        detector.learn_one(event, profiles[event.principal_id], flagged=finding is not None)
    return found


@pytest.mark.parametrize("name", NAMES)
def test_export_and_restore_move_each_principal_and_the_shared_state(name: str, stream: list[Event]) -> None:
    """What incremental checkpoints rely on: the shared state plus every principal's export, each
    pickled apart, rebuild the detector exactly, and it goes on to find what the original finds."""
    detector = REGISTRY[name]()
    feed(detector, stream[:3000])
    assert all(isinstance(getattr(detector, attr), dict) for attr in detector.per_principal)
    rebuilt = detector.clone()
    rebuilt.restore_shared(pickle.loads(pickle.dumps(detector.shared_state())))
    principals = {e.principal_id for e in stream}
    for pid in sorted(principals, reverse=True):  # another order than they came in
        exported = detector.export(pid)
        if exported is not None:
            rebuilt.restore(pid, pickle.loads(pickle.dumps(exported)))
    assert rebuilt.export("nobody") is None
    assert _canonical(rebuilt) == _canonical(detector)
    rest = stream[3000:]
    assert _findings(rebuilt, rest) == _findings(detector, rest)


@pytest.mark.parametrize("name", NAMES)
def test_shared_state_names_no_principal(name: str, stream: list[Event]) -> None:
    """Per-principal state is in :attr:`per_principal` only: the shared state holds peer groups and
    the organisation, never a principal's id (it is written whole at every checkpoint)."""
    detector = REGISTRY[name]()
    feed(detector, stream)
    shared = pickle.dumps(detector.shared_state())
    principals = {e.principal_id for e in stream}
    assert not [pid for pid in principals if pid.encode() in shared]
