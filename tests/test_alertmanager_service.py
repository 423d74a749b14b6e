"""The service and page delivery end to end, with the real broker and a real Alertmanager: pages
arrive as correlated incidents, survive outages and restarts, and a catch-up delivers every one."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest
from am_fixtures import (  # noqa: F401 (fixtures)
    AlertmanagerProcess,
    alertmanager_factory_fixture,
    alertmanager_fixture,
    free_port,
    make_alert,
    wait_for,
)
from delivery_helpers import Delivering, Running, assert_accounted, settings_for, value, wait_until
from factories import T0, access, iso, permission, routine_then_bulk
from kafka import KafkaProducer
from kafka_helpers import committed, principal_key, produce, read_all

from detectors.calibrate import PAGING_LEVELS
from stream.alertmanager.correlate import Correlator, incident_summary
from stream.alertmanager.deliver import delivery_group

pytestmark = pytest.mark.integration

BULK_TS = T0 + 6 * 86_400 + 10 * 3600


def self_grant(principal: str, ts: float = BULK_TS - 600) -> dict[str, Any]:
    """The principal grants itself an admin role ten minutes before its bulk export (pages too)."""
    grant = permission(f"p-self-{principal}", ts, target=principal, privileged=True, ticket=None,
                       permission="role:warehouse-admin")
    grant["actor"] = dict(grant["target"])
    grant["ts"] = iso(ts)
    return grant


def incidents(alertmanager: AlertmanagerProcess) -> dict[str, dict[str, Any]]:
    return {a["labels"]["incident_id"]: a for a in alertmanager.alerts()
            if a["labels"].get("alertname") == "PrivacyIncident" and a["status"]["state"] == "active"}


def paged(bootstrap: str, topic: str) -> set[str]:
    """Incident ids of the paging alerts on the alerts topic."""
    docs = [orjson.loads(r.value) for r in read_all(bootstrap, topic)]
    return {d["incident"]["incident_id"] for d in docs if d["level"] in PAGING_LEVELS}


def test_the_service_pages_once_per_incident(kafka_bootstrap, fresh_topics, group_id, alertmanager):
    topics = fresh_topics(n_partitions=3)
    produce(kafka_bootstrap, topics["permission"], [self_grant("u-300")], principal_key)
    docs = routine_then_bulk("u-300")
    produce(kafka_bootstrap, topics["access"], docs, principal_key)
    settings = settings_for(kafka_bootstrap, topics, group_id, alertmanager_url=alertmanager.url)
    delivering = Delivering(settings)
    run = Running(settings)
    assert run.wait() == 0
    alerts = wait_for(lambda: list(incidents(alertmanager).values()), timeout_s=30)
    delivering.stop()
    assert len(alerts) == 1, alerts
    labels, annotations = alerts[0]["labels"], alerts[0]["annotations"]
    assert not any("u-300" in v or "customers" in v for v in labels.values())
    assert annotations["principal"] == "u-300" and annotations["detectors"] == "privilege,volume"
    assert "records" in annotations["description"]
    assert value(delivering.metrics, "privwatch_alertmanager_sends_total", outcome="ok") >= 1
    assert_accounted(kafka_bootstrap, settings, run.metrics, expect_consumed=len(docs) + 1)


def test_alertmanager_down_for_five_hours_of_event_time_then_back_and_a_restart_between(
        kafka_bootstrap, fresh_topics, group_id, alertmanager_factory):
    """Pages raised while Alertmanager is down, followed by six more hours of events: delivery keeps
    them unsent (nothing committed), survives its own restart, and posts every one, active, once
    Alertmanager is back (before: resolved by event time before they were ever posted)."""
    topics = fresh_topics(n_partitions=3)
    principals = [f"u-7{i}" for i in range(3)]
    docs = [d for p in principals for d in routine_then_bulk(p, days=4)]
    after = [access(f"later-{i}", T0 + 4 * 86_400 + 11 * 3600 + i * 120, f"u-quiet-{i % 5}", action="read")
             for i in range(180)]  # six hours of event time after the bulk exports
    grants = [self_grant(p, T0 + 4 * 86_400 + 10 * 3600 - 600) for p in principals]
    produce(kafka_bootstrap, topics["permission"], grants, principal_key)
    produce(kafka_bootstrap, topics["access"], docs + after, principal_key)
    am = alertmanager_factory(port=free_port())  # not started: connection refused
    settings = settings_for(kafka_bootstrap, topics, group_id, alertmanager_url=am.url)
    first = Delivering(settings)
    run = Running(settings)
    assert run.wait() == 0
    wanted = paged(kafka_bootstrap, topics["alerts"])
    assert len(wanted) == len(principals)
    wait_until(lambda: value(first.metrics, "privwatch_alertmanager_sends_total", outcome="failed") >= 2,
               what="failed posts")
    assert first.delivery.pages.unsent() >= 1  # and it reads no further meanwhile
    first.stop()  # a restart of delivery while Alertmanager is still down: nothing was committed
    assert sum(committed(kafka_bootstrap, delivery_group(settings), [topics["alerts"]]).values()) == 0
    am.start()
    second = Delivering(settings)
    active = wait_for(lambda: incidents(am) if set(incidents(am)) >= wanted else None, timeout_s=60)
    second.stop()
    assert set(active) == wanted
    assert value(second.metrics, "privwatch_alertmanager_sends_total", outcome="ok") >= 1
    assert_accounted(kafka_bootstrap, settings, run.metrics, expect_consumed=len(docs + after + grants))


def test_a_catch_up_over_weeks_leaves_every_page_active(kafka_bootstrap, fresh_topics, group_id, alertmanager):
    """Three weeks of events read in one go: every incident paged on the way is active in
    Alertmanager afterwards (before: 0 of 58, resolved by the event time that followed them)."""
    topics = fresh_topics(n_partitions=3)
    docs = [d for days in (4, 8, 12, 16, 20) for d in routine_then_bulk(f"u-w{days}", days=days, per_day=12)]
    docs.sort(key=lambda d: d["ts"])
    produce(kafka_bootstrap, topics["access"], docs, principal_key)
    settings = settings_for(kafka_bootstrap, topics, group_id, alertmanager_url=alertmanager.url)
    run = Running(settings)
    delivering = Delivering(settings)
    assert run.wait() == 0
    wanted = paged(kafka_bootstrap, topics["alerts"])
    assert len(wanted) >= 5
    active = wait_for(lambda: incidents(alertmanager) if set(incidents(alertmanager)) >= wanted else None,
                      timeout_s=60)
    delivering.stop()
    assert set(active) >= wanted
    assert_accounted(kafka_bootstrap, settings, run.metrics, expect_consumed=len(docs))


def test_an_open_incident_survives_a_restart(kafka_bootstrap, fresh_topics, group_id, alertmanager):
    """The self-grant pages, the service restarts (its snapshot holds the open incident), then the
    bulk export: Alertmanager gets an update of the same incident, not a second one."""
    topics = fresh_topics(n_partitions=3)
    docs = routine_then_bulk("u-301")
    settings = settings_for(kafka_bootstrap, topics, group_id, alertmanager_url=alertmanager.url,
                            durable_state=True, state_key="k" * 32, snapshot_interval_s=1.0)
    delivering = Delivering(settings)
    produce(kafka_bootstrap, topics["permission"], [self_grant("u-301")], principal_key)
    produce(kafka_bootstrap, topics["access"], docs[:-1], principal_key)
    assert Running(settings).wait() == 0
    first = wait_for(lambda: list(incidents(alertmanager)), timeout_s=30)
    produce(kafka_bootstrap, topics["access"], docs[-1:], principal_key)
    run = Running(settings)
    assert run.wait() == 0
    assert value(run.metrics, "privwatch_state_restores_total", outcome="restored") >= 1
    updated = wait_for(lambda: [a for a in incidents(alertmanager).values()
                                if "volume" in a["annotations"].get("detectors", "")], timeout_s=30)
    delivering.stop()
    assert {a["labels"]["incident_id"] for a in updated} == set(first)
    assert updated[0]["annotations"]["detectors"] == "privilege,volume"


def test_a_new_delivery_group_pages_only_what_is_recent_and_a_known_one_everything_it_has_not(
        kafka_bootstrap, fresh_topics, group_id, alertmanager):
    """A new delivery group over an alerts topic holding a day of pages posts only those written in the
    last ``alertmanager_active_s`` (the older ones ended long ago); a group that has committed reads on
    from its offsets, however old the pages after them (an outage's backlog)."""
    topics = fresh_topics(n_partitions=2)
    now_ms = int(time.time() * 1000)

    def page(n: int, principal: str) -> dict[str, Any]:
        alert = make_alert(n, principal=principal, ts=iso(T0 + n))
        alert["incident"] = incident_summary(Correlator().add(alert))
        return alert

    def send(docs: list[dict[str, Any]], age_s: float) -> set[str]:
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        for doc in docs:
            producer.send(topics["alerts"], key=doc["principal_id"].encode(), value=orjson.dumps(doc),
                          timestamp_ms=now_ms - int(age_s * 1000))
        producer.flush()
        producer.close()
        return {d["incident"]["incident_id"] for d in docs}

    old = send([page(n, f"u-old-{n}") for n in range(4)], age_s=20 * 3600)
    recent = send([page(10 + n, f"u-new-{n}") for n in range(4)], age_s=600)
    settings = settings_for(kafka_bootstrap, topics, group_id, alertmanager_url=alertmanager.url)
    first = Delivering(settings)
    wait_until(lambda: set(incidents(alertmanager)) >= recent, what="the recent pages")
    wait_until(lambda: sum(committed(kafka_bootstrap, delivery_group(settings), [topics["alerts"]]).values()) == 8,
               what="offsets committed")
    first.stop()
    assert not set(incidents(alertmanager)) & old
    # the same group later, after a backlog of old pages (written while it was away): all delivered
    backlog = send([page(20 + n, f"u-backlog-{n}") for n in range(4)], age_s=20 * 3600)
    second = Delivering(settings)
    wait_until(lambda: set(incidents(alertmanager)) >= backlog, what="the backlog's pages")
    second.stop()
    assert not set(incidents(alertmanager)) & old
