"""Alertmanager sink: bookkeeping (unit) and delivery to a real Alertmanager (the mapping of alerts to
Alertmanager's API: test_alertmanager_mapping.py)."""

from __future__ import annotations

import copy
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from am_fixtures import (  # noqa: F401 (fixtures)
    AlertmanagerProcess,
    alertmanager_factory_fixture,
    alertmanager_fixture,
    free_port,
    make_alert,
    wait_for,
)
from prometheus_client import CollectorRegistry

from detectors.alerts import iso
from stream.alertmanager import AlertmanagerSink, Backoff, incident_key
from stream.alertmanager.active import ActiveAlerts
from stream.alertmanager.correlate import Correlator
from stream.alertmanager.mapping import event_time
from stream.ops.metrics import Metrics

RUNBOOKS = "https://runbooks.example/privwatch"
FAST = {"backoff_initial_s": 0.02, "backoff_max_s": 0.2, "timeout_s": 2.0}


def ago(minutes: float) -> str:
    """An event time ``minutes`` before now: Alertmanager refuses a startsAt after the endsAt."""
    return iso(time.time() - 60 * minutes)


def sent_value(metrics: Metrics, outcome: str) -> float:
    value = metrics.registry.get_sample_value("privwatch_alertmanager_sends_total", {"outcome": outcome})
    return float(value or 0.0)


def matching(alerts: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    return [a for a in alerts if a["labels"]["incident_id"] == key]


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(CollectorRegistry())


@pytest.fixture
def sinks() -> Iterator[Callable[..., AlertmanagerSink]]:
    made: list[AlertmanagerSink] = []

    def make(url: str, **kwargs: Any) -> AlertmanagerSink:
        sink = AlertmanagerSink(url, runbook_base_url=RUNBOOKS, **{**FAST, **kwargs})
        made.append(sink)
        return sink

    yield make
    for sink in made:
        sink.close(timeout_s=0.5)


# -- sink bookkeeping ---------------------------------------------------------------------------


def test_evidence_url_with_unknown_placeholder_is_refused() -> None:
    with pytest.raises(ValueError, match="evidence_url"):
        AlertmanagerSink("http://127.0.0.1:1", evidence_url="https://x/{principal}", autostart=False)


def test_backoff_schedule_doubles_and_caps() -> None:
    backoff = Backoff(initial_s=0.5, max_s=30.0)
    assert [backoff.next_delay() for _ in range(10)] == [0.5, 1, 2, 4, 8, 16, 30, 30, 30, 30]
    backoff.reset()
    assert backoff.next_delay() == 0.5
    delays = [backoff.next_delay() for _ in range(10_000)]  # no float overflow however long the outage
    assert delays[:6] == [1, 2, 4, 8, 16, 30] and set(delays[5:]) == {30.0}


# -- bookkeeping ----------------------------------------------------------------------------------


def test_active_alerts_expire_by_event_time_and_resolve_explicitly() -> None:
    state = ActiveAlerts("privwatch", active_for_s=3600, max_active=10, max_pending=20)
    t0 = state.apply(make_alert(1, ts="2026-01-01T00:00:00Z"), now=100.0)
    state.apply(make_alert(2, ts="2026-01-01T00:30:00Z"), now=100.0)
    state.pending.clear()
    assert state.expire(t0 + 3599, now=200.0) == 0
    assert state.expire(t0 + 3600, now=200.0) == 1
    [(fp, resolved)] = state.pending.items()
    assert resolved.resolved_at == 200.0 and resolved.doc["alert_id"] == "volume:u-4821:e1"
    assert state.resolve("volume:u-4821:e2", now=300.0)
    assert not state.resolve("volume:u-4821:e2", now=300.0)
    assert not state.active


def test_escalation_resolves_the_old_fingerprint() -> None:
    state = ActiveAlerts("privwatch", active_for_s=3600, max_active=10, max_pending=20)
    state.apply(make_alert(1, level="medium"), now=1.0)
    state.pending.clear()
    state.apply(make_alert(1, level="critical"), now=2.0)
    by_level = {dict(fp)["level"]: item.resolved_at for fp, item in state.pending.items()}
    assert by_level == {"medium": 2.0, "critical": None}
    assert len(state.active) == 1


def test_active_alerts_are_bounded_and_unsent_evictions_counted() -> None:
    dropped: list[int] = []
    state = ActiveAlerts("privwatch", active_for_s=3600, max_active=5, max_pending=10, on_drop=dropped.append)
    for n in range(12):
        state.apply(make_alert(n), now=1.0)
    assert len(state.active) == 5 and len(state.pending) == 5 and sum(dropped) == 7


def test_full_queue_drops_oldest_and_counts(metrics: Metrics) -> None:
    sink = AlertmanagerSink("http://127.0.0.1:1", metrics=metrics, queue_size=3, autostart=False)
    for n in range(5):
        sink.submit(make_alert(n))
    assert sink.queued == 3
    assert sink.counts["dropped"] == 2 and sent_value(metrics, "dropped") == 2
    assert metrics.registry.get_sample_value("privwatch_alertmanager_queue") == 3
    assert [item["alert_id"] for _, item in sink._queue] == [f"volume:u-4821:e{n}" for n in (2, 3, 4)]
    sink.close()
    assert sent_value(metrics, "dropped") == 5  # unsent at close: counted, not hidden


def test_sender_retries_with_backoff_then_delivers(monkeypatch: pytest.MonkeyPatch, metrics: Metrics,
                                                   sinks: Callable[..., AlertmanagerSink]) -> None:
    posts: list[list[dict[str, Any]]] = []
    failures = iter(range(3))

    def fake_post(url: str, alerts: list[dict[str, Any]], timeout_s: float) -> None:
        from stream.alertmanager.client import AlertmanagerError
        if next(failures, None) is not None:
            raise AlertmanagerError("connection refused")
        posts.append(copy.deepcopy(alerts))

    monkeypatch.setattr("stream.alertmanager.sink.post_alerts", fake_post)
    sink = sinks("http://am", metrics=metrics)
    sink.submit(make_alert(1))
    sink.submit(make_alert(1))  # a duplicate collapses into the same pending post
    assert sink.flush(timeout_s=10)
    assert sent_value(metrics, "failed") == 3 and sent_value(metrics, "ok") == 1
    assert [len(batch) for batch in posts] == [1]


def test_active_alerts_are_resent_with_a_fresh_end(monkeypatch: pytest.MonkeyPatch,
                                                   sinks: Callable[..., AlertmanagerSink]) -> None:
    posts: list[dict[str, Any]] = []
    monkeypatch.setattr("stream.alertmanager.sink.post_alerts", lambda url, alerts, t: posts.extend(alerts))
    now = [1_000_000.0]
    sink = sinks("http://am", resend_s=60, clock=lambda: now[0])
    sink.submit(make_alert(1))
    assert sink.flush(timeout_s=10)
    assert [p["endsAt"] for p in posts] == ["1970-01-12T13:49:40.000Z"]  # now + 3 x 60 s
    now[0] += 61
    wait_for(lambda: len(posts) == 2)
    assert posts[1]["endsAt"] == "1970-01-12T13:50:41.000Z"
    assert posts[1]["labels"] == posts[0]["labels"]


def test_quiet_alerts_resolve_when_event_time_moves_on(monkeypatch: pytest.MonkeyPatch,
                                                      sinks: Callable[..., AlertmanagerSink]) -> None:
    posts: list[dict[str, Any]] = []
    monkeypatch.setattr("stream.alertmanager.sink.post_alerts", lambda url, alerts, t: posts.extend(alerts))
    now = [event_time("2026-11-26T10:00:00Z")]
    sink = sinks("http://am", active_for_s=3600, clock=lambda: now[0])
    alert = make_alert(1, ts="2026-11-26T09:31:12.500Z")
    sink.submit(alert)
    assert sink.flush(timeout_s=10)
    sink.advance(event_time(alert["ts"]) + 3599)
    sink.advance(event_time(alert["ts"]) + 3600)
    wait_for(lambda: len(posts) == 2)
    assert posts[1]["endsAt"] == "2026-11-26T10:00:00.000Z" and sink.active_count == 0


def test_submit_never_blocks_on_a_hung_alertmanager(metrics: Metrics,
                                                    sinks: Callable[..., AlertmanagerSink]) -> None:
    # A listener that never accepts: every post hangs until its timeout.
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(0)
        url = f"http://127.0.0.1:{hung.getsockname()[1]}"
        sink = sinks(url, metrics=metrics, queue_size=100, timeout_s=30.0)
        sink.submit(make_alert(0))
        wait_for(lambda: sink._working)  # the sender is stuck in its first post
        for n in range(1, 1001):
            sink.submit(make_alert(n))
        assert sink.queued <= 100 + 1
        assert sent_value(metrics, "dropped") == 900
        assert not sink.flush(timeout_s=0.2)


# -- with a real Alertmanager -------------------------------------------------------------------


@pytest.mark.integration
def test_alerts_arrive_with_labels_and_annotations(alertmanager: AlertmanagerProcess, metrics: Metrics,
                                                   sinks: Callable[..., AlertmanagerSink]) -> None:
    sink = sinks(alertmanager.url, metrics=metrics, evidence_url="https://ev.example/a/{alert_id}")
    alert = make_alert(1, ts=ago(5))
    sink.submit(alert)
    assert sink.flush(timeout_s=10)
    [got] = matching(alertmanager.alerts(), incident_key(alert["alert_id"]))
    assert got["labels"] == {"alertname": "PrivacyIncident", "detector": "volume", "level": "critical",
                             "severity": "page", "service": "privwatch",
                             "incident_id": incident_key(alert["alert_id"])}
    assert got["annotations"]["summary"] == "volume finding 1"
    assert got["annotations"]["principal"] == "u-4821"
    assert got["annotations"]["runbook_url"] == f"{RUNBOOKS}/volume.md"
    assert got["annotations"]["evidence"] == "e1"
    assert got["generatorURL"] == "https://ev.example/a/volume%3Au-4821%3Ae1"
    assert got["startsAt"] == alert["ts"]
    assert got["status"]["state"] == "active"
    assert sent_value(metrics, "ok") >= 1 and sent_value(metrics, "failed") == 0


@pytest.mark.integration
def test_duplicates_and_correlated_alerts_are_one_alert(alertmanager: AlertmanagerProcess,
                                                        sinks: Callable[..., AlertmanagerSink]) -> None:
    sink = sinks(alertmanager.url)
    # event times near now: the sink resolves an alert once event time is active_for_s (4 h) past it
    single = make_alert(1, principal="u-1", ts=ago(30))
    sink.submit(single)
    sink.submit(copy.deepcopy(single))
    correlator = Correlator(window_s=3600)
    steps = [("privilege", "medium", ago(30)), ("volume", "high", ago(20)), ("context", "critical", ago(10))]
    for n, (detector, level, ts) in enumerate(steps):
        incident = correlator.add(make_alert(n, principal="u-2", detector=detector, level=level, ts=ts))
        sink.submit(incident)
        assert sink.flush(timeout_s=10)
    keys = {incident_key(single["alert_id"]), incident["incident_id"]}

    def grouped() -> list[dict[str, Any]]:
        alerts = [a for g in alertmanager.groups() for a in g["alerts"] if a["labels"]["incident_id"] in keys]
        return alerts if len(alerts) == 2 else []

    by_key = {a["labels"]["incident_id"]: a for a in wait_for(grouped)}
    assert len(matching(alertmanager.alerts(), incident["incident_id"])) == 1
    merged = by_key[incident["incident_id"]]
    assert merged["labels"]["level"] == "critical" and merged["labels"]["detector"] == "privilege"
    assert json.loads(merged["annotations"]["reasons"]) == ["privilege reason 0", "volume reason 1",
                                                            "context reason 2"]
    assert merged["annotations"]["runbook_url"] == f"{RUNBOOKS}/incident.md"
    assert merged["startsAt"] == steps[0][2]


@pytest.mark.integration
def test_resolved_alert_resolves(alertmanager: AlertmanagerProcess,
                                 sinks: Callable[..., AlertmanagerSink]) -> None:
    sink = sinks(alertmanager.url, active_for_s=3600)
    explicit, quiet = make_alert(1, principal="u-1", ts=ago(90)), make_alert(2, principal="u-2", ts=ago(90))
    fresh = make_alert(3, principal="u-3", ts=ago(29))  # an hour and a bit of event time later
    for alert in (explicit, quiet):
        sink.submit(alert)
    assert sink.flush(timeout_s=10)
    assert len(alertmanager.alerts()) == 2
    sink.resolve(explicit["alert_id"])
    sink.submit(fresh)  # the quiet one is over
    assert sink.flush(timeout_s=10)
    active = {a["labels"]["incident_id"] for a in alertmanager.alerts()}
    assert active == {incident_key(fresh["alert_id"])}
    assert sink.active_count == 1


@pytest.mark.integration
def test_outage_does_not_block_and_the_backlog_is_delivered(
    alertmanager_factory: Callable[..., AlertmanagerProcess], metrics: Metrics,
    sinks: Callable[..., AlertmanagerSink],
) -> None:
    am = alertmanager_factory(port=free_port())  # not started: connection refused
    sink = sinks(am.url, metrics=metrics, queue_size=50, max_active=150)
    for n in range(100):
        sink.submit(make_alert(n, principal=f"u-{n}", ts=ago(5)))
    wait_for(lambda: sent_value(metrics, "failed") >= 2)
    for n in range(100, 200):
        sink.submit(make_alert(n, principal=f"u-{n}", ts=ago(5)))
        assert sink.queued <= 150 + 50
    assert not sink.flush(timeout_s=0.1)
    dropped = sent_value(metrics, "dropped")
    assert dropped >= 50  # 200 distinct alerts, at most 150 kept active
    am.start()
    assert sink.flush(timeout_s=20)
    assert len(am.alerts()) == 200 - dropped
    assert sent_value(metrics, "ok") >= 1
    assert metrics.registry.get_sample_value("privwatch_alertmanager_queue") == 0


@pytest.mark.integration
def test_alertmanager_restart_mid_stream(alertmanager: AlertmanagerProcess,
                                         sinks: Callable[..., AlertmanagerSink]) -> None:
    sink = sinks(alertmanager.url, resend_s=0.5)
    sink.submit(make_alert(1, principal="u-1", ts=ago(5)))
    assert sink.flush(timeout_s=10)
    alertmanager.stop()  # loses its in-memory alerts (no persistence beyond silences)
    sink.submit(make_alert(2, principal="u-2", ts=ago(5)))
    alertmanager.start()
    # both come back: the new one from the backlog, the old one from the periodic re-send
    wait_for(lambda: len(alertmanager.alerts()) == 2, timeout_s=15)


def test_thread_is_a_daemon(sinks: Callable[..., AlertmanagerSink]) -> None:
    sink = sinks("http://127.0.0.1:1")
    assert any(t.name == "alertmanager-sink" and t.daemon for t in threading.enumerate())
    sink.close(timeout_s=0.1)
