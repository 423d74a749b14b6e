"""The service end to end with the real Alertmanager: paging alerts arrive as correlated incidents."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from am_fixtures import alertmanager_factory_fixture, alertmanager_fixture, wait_for  # noqa: F401 (fixtures)
from factories import T0, iso, permission, routine_then_bulk
from kafka_helpers import principal_key, produce
from prometheus_client import CollectorRegistry

from stream.ops.metrics import Metrics
from stream.service.run import make_sink
from stream.service.service import Service
from stream.settings import Settings

pytestmark = pytest.mark.integration


BULK_TS = T0 + 6 * 86_400 + 10 * 3600


def self_grant(principal: str) -> dict[str, Any]:
    """The principal grants itself an admin role ten minutes before its bulk export (pages too)."""
    grant = permission("p-self", BULK_TS - 600, target=principal, privileged=True, ticket=None,
                       permission="role:warehouse-admin")
    grant["actor"] = dict(grant["target"])
    grant["ts"] = iso(BULK_TS - 600)
    return grant


def service_settings(bootstrap: str, topics: dict[str, str], group_id: str, url: str, **extra: Any) -> Settings:
    return Settings(bootstrap_servers=bootstrap, group_id=group_id, access_topic=topics["access"],
                    permission_topic=topics["permission"], alerts_topic=topics["alerts"],
                    dead_letter_topic=topics["dead-letter"], feedback_topic=topics["feedback"],
                    state_topic=topics["state"], metrics_port=0, merge_wait_ms=100,
                    alertmanager_url=url, alertmanager_resend_s=1.0, **extra)


def run_service(settings: Settings) -> Metrics:
    metrics = Metrics(CollectorRegistry(), ["volume", "privilege"])
    service = Service(settings, metrics, sink=make_sink(settings, metrics))
    thread = threading.Thread(target=service.run, kwargs={"max_idle_s": 3.0})
    thread.start()
    thread.join(timeout=120)
    assert not thread.is_alive()
    return metrics


def test_service_pages_through_alertmanager_once_per_incident(kafka_bootstrap, fresh_topics, group_id, alertmanager):
    topics = fresh_topics(n_partitions=3)
    docs = routine_then_bulk("u-300")
    # the same principal also grants itself an admin role minutes before: one incident, two reasons
    produce(kafka_bootstrap, topics["permission"], [self_grant("u-300")], principal_key)
    produce(kafka_bootstrap, topics["access"], docs, principal_key)
    metrics = run_service(service_settings(kafka_bootstrap, topics, group_id, alertmanager.url))
    alerts = wait_for(lambda: [a for a in alertmanager.alerts() if a["labels"].get("alertname") == "PrivacyIncident"])
    assert len(alerts) == 1, alerts
    labels, annotations = alerts[0]["labels"], alerts[0]["annotations"]
    assert labels["service"] == "privwatch" and labels["level"] in {"medium", "high", "critical"}
    assert not any("u-300" in value or "customers" in value for value in labels.values())
    assert "u-300" in annotations["principal"]
    assert "self" in annotations["description"].lower() or "grant" in annotations["description"].lower()
    assert "records" in annotations["description"]
    assert metrics.registry.get_sample_value("privwatch_alertmanager_sends_total", {"outcome": "ok"}) >= 1


def test_an_open_incident_survives_a_restart(kafka_bootstrap, fresh_topics, group_id, alertmanager):
    """The self-grant pages, the service restarts (its snapshot holds the open incident), then the
    bulk export: Alertmanager gets an update of the same incident, not a second one (the privacy
    route groups by incident_id, so a new id would be a new page)."""
    topics = fresh_topics(n_partitions=3)
    docs = routine_then_bulk("u-301")
    settings = service_settings(kafka_bootstrap, topics, group_id, alertmanager.url, state_key="k" * 32,
                                snapshot_interval_s=1.0)
    produce(kafka_bootstrap, topics["permission"], [self_grant("u-301")], principal_key)
    produce(kafka_bootstrap, topics["access"], docs[:-1], principal_key)
    run_service(settings)
    first = wait_for(lambda: [a for a in alertmanager.alerts() if a["labels"].get("alertname") == "PrivacyIncident"])
    produce(kafka_bootstrap, topics["access"], docs[-1:], principal_key)
    metrics = run_service(settings)
    assert metrics.registry.get_sample_value("privwatch_state_restores_total", {"outcome": "restored"}) >= 1
    updated = wait_for(lambda: [a for a in alertmanager.alerts() if a["labels"].get("alertname") == "PrivacyIncident"
                                and "volume" in a["annotations"].get("detectors", "")])
    assert {a["labels"]["incident_id"] for a in [*first, *updated]} == {first[0]["labels"]["incident_id"]}
    assert updated[0]["annotations"]["detectors"] == "privilege,volume"
