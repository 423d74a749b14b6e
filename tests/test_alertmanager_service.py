"""The service end to end with the real Alertmanager: paging alerts arrive as correlated incidents."""

from __future__ import annotations

import threading

import pytest
from am_fixtures import alertmanager_factory_fixture, alertmanager_fixture, wait_for  # noqa: F401 (fixtures)
from factories import T0, iso, permission, routine_then_bulk
from kafka_helpers import principal_key, produce
from prometheus_client import CollectorRegistry

from stream.metrics import Metrics
from stream.run import make_sink
from stream.service import Service
from stream.settings import Settings

pytestmark = pytest.mark.integration


def test_service_pages_through_alertmanager_once_per_incident(kafka_bootstrap, fresh_topics, group_id, alertmanager):
    topics = fresh_topics(n_partitions=3)
    docs = routine_then_bulk("u-300")
    bulk_ts = T0 + 6 * 86_400 + 10 * 3600
    # the same principal also grants itself an admin role minutes before: one incident, two reasons
    grant = permission("p-self", bulk_ts - 600, target="u-300", privileged=True, ticket=None,
                       permission="role:warehouse-admin")
    grant["actor"] = dict(grant["target"])
    grant["ts"] = iso(bulk_ts - 600)
    produce(kafka_bootstrap, topics["permission"], [grant], principal_key)
    produce(kafka_bootstrap, topics["access"], docs, principal_key)
    settings = Settings(bootstrap_servers=kafka_bootstrap, group_id=group_id, access_topic=topics["access"],
                        permission_topic=topics["permission"], alerts_topic=topics["alerts"],
                        dead_letter_topic=topics["dead-letter"], feedback_topic=topics["feedback"],
                        state_topic=topics["state"], metrics_port=0, merge_wait_ms=100,
                        alertmanager_url=alertmanager.url, alertmanager_resend_s=1.0)
    metrics = Metrics(CollectorRegistry(), ["volume", "privilege"])
    service = Service(settings, metrics, sink=make_sink(settings, metrics))
    thread = threading.Thread(target=service.run, kwargs={"max_idle_s": 3.0})
    thread.start()
    thread.join(timeout=120)
    assert not thread.is_alive()
    alerts = wait_for(lambda: [a for a in alertmanager.alerts() if a["labels"].get("alertname") == "PrivacyIncident"])
    assert len(alerts) == 1, alerts
    labels, annotations = alerts[0]["labels"], alerts[0]["annotations"]
    assert labels["service"] == "privwatch" and labels["level"] in {"medium", "high", "critical"}
    assert not any("u-300" in value or "customers" in value for value in labels.values())
    assert "u-300" in annotations["principal"]
    assert "self" in annotations["description"].lower() or "grant" in annotations["description"].lower()
    assert "records" in annotations["description"]
    assert metrics.registry.get_sample_value("privwatch_alertmanager_sends_total", {"outcome": "ok"}) >= 1
