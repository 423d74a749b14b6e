"""Pseudonymised alert documents, and incidents that expire by their own partition's event time
(in memory, no broker)."""

from __future__ import annotations

import orjson
from am_fixtures import make_alert
from factories import lines, routine_then_bulk

from detectors.calibrate import PAGING_LEVELS
from stream.alertmanager.correlate import Correlator
from stream.alertmanager.pseudonym import pseudonym
from stream.settings import Settings
from stream.testing import in_memory

KEY = "q" * 32


def test_alerts_topic_documents_are_pseudonymised_in_alerts_mode() -> None:
    docs = routine_then_bulk("u-secret-7", days=4)
    settings = Settings(metrics_port=0, durable_state=False, pseudonymise="alerts", pseudonym_key=KEY)
    service, harness = in_memory(lines(docs), partitions=2, settings=settings)
    harness.run(service)
    alerts = [orjson.loads(value) for topic, _, value, _ in harness.producer.sent if topic == settings.alerts_topic]
    paging = [a for a in alerts if a["level"] in PAGING_LEVELS]
    assert paging and all("u-secret-7" not in orjson.dumps(a).decode() for a in alerts)
    assert {a["principal_id"] for a in paging} == {pseudonym(KEY.encode(), "u-secret-7")}
    assert paging[0]["incident"]["incident_id"]  # the page still carries its incident


def test_one_partitions_event_time_does_not_expire_anothers_incidents() -> None:
    correlator = Correlator(window_s=3600)
    first = correlator.add(make_alert(1, principal="u-a", ts="2026-11-26T09:00:00Z"), partition=0)
    correlator.add(make_alert(2, principal="u-b", ts="2026-11-27T09:00:00Z"), partition=1)  # a day on, elsewhere
    again = correlator.add(make_alert(3, principal="u-a", ts="2026-11-26T09:30:00Z"), partition=0)
    assert again["incident_id"] == first["incident_id"] and again["updates"] == 2
