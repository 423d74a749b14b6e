"""Alerts and correlated incidents mapped to Alertmanager's API: labels, annotations, times, runbooks."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from am_fixtures import make_alert
from contract_schemas import validator
from factories import CONTRACT

from detectors.alerts import alert_id
from stream.alertmanager import incident_key, severity_bucket, to_alertmanager
from stream.alertmanager.correlate import Correlator
from stream.alertmanager.mapping import event_time

EXAMPLE = CONTRACT / "examples" / "alert.json"
RUNBOOKS = "https://runbooks.example/privwatch"


def test_mapping_of_the_contract_example() -> None:
    alert = json.loads(EXAMPLE.read_text())
    am = to_alertmanager(alert, service="privwatch", runbook_base_url=RUNBOOKS,
                         evidence_url="https://grafana.example/evidence?alert={alert_id}",
                         ends_at=event_time(alert["ts"]) + 180)
    key = hashlib.sha256(alert["alert_id"].encode()).hexdigest()[:16]
    assert am["labels"] == {"alertname": "PrivacyIncident", "detector": "volume", "level": "critical",
                            "severity": "page", "service": "privwatch", "incident_id": key}
    notes = am["annotations"]
    assert notes["summary"] == alert["title"]
    assert json.loads(notes["reasons"]) == alert["reasons"]
    assert all(reason in notes["description"] for reason in alert["reasons"])
    assert notes["principal"] == "u-4821"
    assert notes["runbook_url"] == f"{RUNBOOKS}/volume.md"
    assert notes["evidence"] == "01JD8X9B0Z2M,01JD8XC1R8VN"
    assert notes["evidence_url"] == ("https://grafana.example/evidence?alert=volume%3Au-4821%3A01JD8XC1R8VN%3A"
                                     + alert["alert_id"].rsplit(":", 1)[1])
    assert notes["severity"] == "91.5"
    assert am["generatorURL"] == notes["evidence_url"]
    assert am["startsAt"] == "2026-11-26T09:31:12.500Z"
    assert am["endsAt"] == "2026-11-26T09:34:12.500Z"
    assert all(isinstance(v, str) for v in [*am["labels"].values(), *notes.values()])


def test_test_alerts_follow_the_contract() -> None:
    validator("alert").validate(make_alert(alert_id=alert_id("volume", "u-4821", "e1")))


def test_labels_carry_no_principal_resource_or_subject_id() -> None:
    alert = make_alert(principal="alice@example.com", subjects=["subject-77"],
                       resource_ids=["hr.salaries"], related_principal_ids=["bob@example.com"])
    labels = to_alertmanager(alert, runbook_base_url=RUNBOOKS)["labels"]
    identifiers = ["alice", "bob", "hr.salaries", "subject-77", alert["alert_id"]]
    assert not [v for v in labels.values() for ident in identifiers if ident in v]
    assert labels["incident_id"] == incident_key(alert["alert_id"])


def test_without_evidence_url_the_generator_is_the_runbook_and_no_end_is_sent() -> None:
    am = to_alertmanager(make_alert(detector="privilege"), runbook_base_url=RUNBOOKS + "/")
    assert am["generatorURL"] == f"{RUNBOOKS}/privilege.md"
    assert "endsAt" not in am and "evidence_url" not in am["annotations"]


def test_start_is_never_after_the_end() -> None:
    am = to_alertmanager(make_alert(ts="2026-01-01T00:00:10Z"), ends_at=event_time("2026-01-01T00:00:00Z"))
    assert am["startsAt"] == am["endsAt"] == "2026-01-01T00:00:00.000Z"


def test_correlated_incident_maps_to_the_incident_runbook() -> None:
    correlator = Correlator()
    correlator.add(make_alert(1, detector="privilege", level="medium"))
    incident = correlator.add(make_alert(2, detector="volume"))
    am = to_alertmanager(incident, runbook_base_url=RUNBOOKS)
    assert am["labels"]["detector"] == "privilege"  # the opener: labels must not change
    assert am["labels"]["incident_id"] == incident_key("privilege:u-4821:e1")
    assert am["annotations"]["runbook_url"] == f"{RUNBOOKS}/incident.md"
    assert am["annotations"]["detectors"] == "privilege,volume"
    assert am["annotations"]["updates"] == "2"
    assert am["annotations"]["alert_ids"] == "privilege:u-4821:e1,volume:u-4821:e2"


def test_every_detector_has_a_runbook_with_feedback_instructions() -> None:
    from detectors.registry import REGISTRY

    runbooks = Path(__file__).resolve().parents[1] / "docs" / "runbooks"
    for name in [*REGISTRY, "incident"]:
        text = (runbooks / f"{name}.md").read_text()
        assert "privwatch feedback" in text and "--verdict" in text and "analyst-guide.md" in text, name


@pytest.mark.parametrize(("level", "bucket"), [("info", "ticket"), ("low", "ticket"), ("medium", "page"),
                                              ("high", "page"), ("critical", "page")])
def test_severity_bucket(level: str, bucket: str) -> None:
    assert severity_bucket(level) == bucket
