"""Correlator: one principal's alerts within a window of event time are one incident."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from detectors.alerts import iso
from stream.alertmanager import incident_key
from stream.alertmanager.correlate import Correlator

T0 = 1_790_000_000.0


def alert(n: int, minutes: float, principal: str = "u-1", detector: str = "volume", level: str = "medium",
          severity: float = 55.0, evidence: list[str] | None = None, reasons: list[str] | None = None
          ) -> dict[str, Any]:
    return {
        "type": "alert", "alert_id": f"{detector}:{principal}:e{n}", "ts": iso(T0 + 60 * minutes),
        "detected_at": iso(T0), "detector": detector, "principal_id": principal, "severity": severity,
        "level": level, "title": f"{detector} {n}", "reasons": reasons or [f"{detector} reason {n}"],
        "evidence_event_ids": evidence or [f"e{n}"], "resource_ids": [f"r{n}"], "related_principal_ids": [],
    }


def test_alerts_of_one_principal_merge_into_one_incident() -> None:
    c = Correlator(window_s=3600)
    first = c.add(alert(1, 0, detector="privilege", reasons=["granted without ticket", "self-grant"]))
    c.add(alert(2, 10, detector="volume", level="critical", severity=92.0,
                reasons=["bulk read", "self-grant"]))
    last = c.add(alert(3, 20, detector="context", level="high", severity=70.0, evidence=["e2", "e3"]))
    assert first["incident_id"] == last["incident_id"] == incident_key("privilege:u-1:e1")
    assert last["detector"] == "privilege"
    assert last["detectors"] == ["privilege", "volume", "context"]
    assert last["reasons"] == ["granted without ticket", "self-grant", "bulk read", "context reason 3"]
    assert (last["severity"], last["level"]) == (92.0, "critical")
    assert last["title"] == "volume 2 (+2 related alerts)"
    assert last["evidence_event_ids"] == ["e1", "e2", "e3"]
    assert last["alert_ids"] == ["privilege:u-1:e1", "volume:u-1:e2", "context:u-1:e3"]
    assert last["resource_ids"] == ["r1", "r2", "r3"]
    assert (last["first_ts"], last["last_ts"], last["ts"]) == (iso(T0), iso(T0 + 1200), iso(T0))
    assert last["updates"] == 3 and len(c) == 1


def test_a_single_alert_is_an_incident_with_the_alerts_hashed_id() -> None:
    incident = Correlator().add(alert(1, 0))
    assert incident["incident_id"] == incident_key("volume:u-1:e1")
    assert incident["title"] == "volume 1" and incident["updates"] == 1


def test_principals_do_not_mix() -> None:
    c = Correlator()
    a = c.add(alert(1, 0, principal="u-1"))
    b = c.add(alert(2, 1, principal="u-2"))
    assert a["incident_id"] != b["incident_id"] and len(c) == 2


def test_window_is_a_session_on_event_time() -> None:
    c = Correlator(window_s=3600)
    first = c.add(alert(1, 0))
    assert c.add(alert(2, 55))["incident_id"] == first["incident_id"]
    assert c.add(alert(3, 110))["incident_id"] == first["incident_id"]  # within an hour of the last
    later = c.add(alert(4, 171))
    assert later["incident_id"] == incident_key("volume:u-1:e4") and later["updates"] == 1


def test_reprocessed_alert_is_not_counted_twice() -> None:
    c = Correlator()
    c.add(alert(1, 0))
    once = c.add(alert(2, 5))
    again = c.add(copy.deepcopy(alert(2, 5)))
    assert again == once


def test_input_is_not_mutated_and_results_are_copies() -> None:
    c = Correlator()
    a = alert(1, 0)
    before = copy.deepcopy(a)
    incident = c.add(a)
    incident["reasons"].append("tampered")
    assert a == before
    assert "tampered" not in c.add(alert(2, 1))["reasons"]


def test_evidence_is_a_capped_union() -> None:
    c = Correlator()
    for n in range(30):
        incident = c.add(alert(n, n, evidence=[f"x{n}-{k}" for k in range(5)] + ["shared"]))
    assert len(incident["evidence_event_ids"]) == 100
    assert len(set(incident["evidence_event_ids"])) == 100
    assert incident["evidence_event_ids"][-1] == "x29-4"


def test_old_incidents_expire_by_event_time() -> None:
    c = Correlator(window_s=3600)
    for p in range(50):
        c.add(alert(p, 0, principal=f"u-{p}"))
    assert len(c) == 50
    c.add(alert(99, 61, principal="u-new"))
    assert len(c) == 1
    assert c.expire(T0 + 61 * 60 + 3601) == 1 and len(c) == 0


def test_open_incidents_are_capped() -> None:
    c = Correlator(window_s=3600, max_incidents=10)
    for p in range(25):
        c.add(alert(p, 0, principal=f"u-{p}"))
    assert len(c) == 10


def test_deterministic() -> None:
    stream = [alert(n, n * 7 % 90, principal=f"u-{n % 3}", detector=("volume", "context")[n % 2])
              for n in range(40)]
    c1, c2 = Correlator(window_s=1800), Correlator(window_s=1800)
    assert [c1.add(a) for a in stream] == [c2.add(a) for a in stream]


@pytest.mark.parametrize("bad", [{"window_s": 0}, {"max_incidents": 0}])
def test_bad_arguments(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Correlator(**bad)  # type: ignore[arg-type]


def test_a_partitions_open_incidents_move_with_it() -> None:
    """Exported into the partition's snapshot, restored by its next owner: a later alert updates the
    same incident (same id, no second page) instead of opening a new one."""
    old = Correlator(window_s=3600)
    first = old.add(alert(1, 0, principal="u-1", detector="privilege"), partition=0)
    old.add(alert(2, 1, principal="u-2"), partition=1)
    exported = old.export(0)
    assert [i.principal_id for i in exported] == ["u-1"]
    new = Correlator(window_s=3600)
    new.add(alert(3, 2, principal="u-3"), partition=1)
    new.restore(0, copy.deepcopy(exported))
    later = new.add(alert(4, 30, principal="u-1", detector="volume", level="critical"), partition=0)
    assert later["incident_id"] == first["incident_id"] and later["updates"] == 2
    assert later["detectors"] == ["privilege", "volume"]
    new.drop({0})
    assert len(new) == 1  # u-3's incident, of partition 1, stays
    assert new.add(alert(5, 31, principal="u-1"), partition=0)["incident_id"] != first["incident_id"]


def test_restored_incidents_expire_in_event_time_order() -> None:
    old = Correlator(window_s=600)
    old.add(alert(1, 0, principal="u-1"), partition=0)
    old.add(alert(2, 5, principal="u-2"), partition=0)
    new = Correlator(window_s=600)
    new.add(alert(3, 8, principal="u-3"), partition=1)
    new.restore(0, old.export(0))
    assert new.expire(T0 + 60 * 12) == 1 and len(new) == 2  # u-1 (last alert at minute 0) only
