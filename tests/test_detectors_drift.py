"""Golden drift streams: seeded, with a known change point, and an asserted detection window."""

from __future__ import annotations

import random

from detector_streams import DAY, HOUR, T0, routine

from detectors.base import Finding, Profile
from detectors.drift import Drift
from detectors.events import Event
from detectors.shift import ShiftMonitor

CHANGE_HOUR = 24 * 14  # two weeks of normal traffic, then the department triples its activity


def hourly_counts(seed: int, surge: float) -> list[float]:
    rng = random.Random(seed)
    out = []
    for h in range(24 * 21):
        hod = h % 24
        base = 120.0 if 8 <= hod < 18 else 15.0
        mean = base * (surge if h >= CHANGE_HOUR else 1.0)
        out.append(max(0.0, rng.gauss(mean, mean**0.5)))
    return out


def test_golden_surge_is_detected_within_hours_of_the_change() -> None:
    monitor = ShiftMonitor()
    hits = [h for h, n in enumerate(hourly_counts(seed=5, surge=3.0)) if monitor.update(T0 + h * HOUR, n)]
    assert hits, "the surge was not detected"
    assert CHANGE_HOUR <= hits[0] <= CHANGE_HOUR + 12, hits[:3]


def test_golden_stationary_stream_raises_no_drift() -> None:
    monitor = ShiftMonitor()
    assert not [h for h, n in enumerate(hourly_counts(seed=6, surge=1.0)) if monitor.update(T0 + h * HOUR, n)]


def test_drift_findings_are_report_only_and_damp_peer_findings() -> None:
    drift = Drift()
    profile = Profile(first_ts=T0, last_ts=T0)
    reported = []
    for e in routine(seed=2, days=15, depts=(("finance", "analyst", 10),), services=0):
        f = drift.score_one(e, profile)
        if f is not None:
            reported.append(f)
        drift.learn_one(e, profile)
    assert all(f.max_severity < 50 and not f.needs_history for f in reported)

    def finding(pid: str, ts: float) -> Finding:
        e = Event(kind="access", event_id=f"{pid}-{ts}", ts=ts, principal_id=pid, department="finance")
        return Finding("volume", e, 5.0, "t", ["r"], [e.event_id])

    now = T0 + 16 * DAY
    first = finding("fi-000", now)
    assert not drift.is_peer_shift(first, profile)  # alone: not a peer shift
    for i in range(1, 4):
        drift.note_finding(finding(f"fi-00{i}", now + i), profile)
    assert drift.is_peer_shift(finding("fi-000", now + 10), profile)
    assert not drift.is_peer_shift(finding("fi-000", now + 3 * DAY), profile)  # the window has passed


def test_a_department_shift_made_by_one_principal_alone_does_not_damp_its_findings() -> None:
    """One analyst's spree of 1,200 accesses in four hours shifts its department's hourly activity; that
    shift explains nothing about the analyst itself (it still damps a quiet colleague's finding)."""
    drift = Drift()
    profile = Profile(first_ts=T0, last_ts=T0)
    base = routine(seed=2, days=16, depts=(("finance", "analyst", 10),), services=0)
    spree_start = T0 + 15 * DAY + 10 * HOUR
    spree = [
        Event(kind="access", event_id=f"sp{i}", ts=spree_start + i * 12, principal_id="fi-000", department="finance")
        for i in range(1200)
    ]
    for e in sorted([*base, *spree], key=lambda e: e.ts):
        drift.learn_one(e, profile)
    after = spree_start + 4.5 * HOUR
    assert drift.shift_until_.get("dept:finance", 0.0) > after, "the spree did not shift the department"

    def finding(pid: str) -> Finding:
        e = Event(kind="access", event_id=f"{pid}-x", ts=after, principal_id=pid, department="finance")
        return Finding("subjects", e, 5.0, "t", ["r"], [e.event_id])

    assert not drift.is_peer_shift(finding("fi-000"), profile)
    assert drift.is_peer_shift(finding("fi-001"), profile)
