"""Page delivery: bookkeeping and the delivery loop (unit, fake Alertmanager), then a real Alertmanager.

The service-level guarantees (an outage of hours of event time, a catch-up over weeks, restarts) run
against the real broker in test_alertmanager_service.py."""

from __future__ import annotations

import base64
import http.server
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from am_fixtures import (  # noqa: F401 (fixtures)
    AlertmanagerProcess,
    alertmanager_factory_fixture,
    alertmanager_fixture,
    make_alert,
    wait_for,
)
from kafka import TopicPartition
from prometheus_client import CollectorRegistry

from detectors.alerts import iso
from stream.alertmanager import incident_key, to_alertmanager
from stream.alertmanager.client import AlertmanagerError, Connection, post_alerts
from stream.alertmanager.correlate import Correlator, incident_summary
from stream.alertmanager.deliver import Delivery
from stream.alertmanager.pages import Pages
from stream.alertmanager.pseudonym import pseudonym
from stream.backoff import Backoff
from stream.ops.metrics import Metrics
from stream.settings import Settings

RUNBOOKS = "https://runbooks.example/privwatch"


def paging(n: int, principal: str, ts: str, correlator: Correlator | None = None, **extra: Any) -> dict[str, Any]:
    """A paging alert as the service writes it: with the incident it joined."""
    alert = make_alert(n, principal=principal, ts=ts, **extra)
    alert["incident"] = incident_summary((correlator if correlator is not None else Correlator()).add(alert))
    return alert


def sent(metrics: Metrics, outcome: str) -> float:
    return metrics.registry.get_sample_value("privwatch_alertmanager_sends_total", {"outcome": outcome}) or 0.0


def test_backoff_schedule_doubles_and_caps() -> None:
    backoff = Backoff(initial_s=0.5, max_s=30.0)
    assert [backoff.next_delay() for _ in range(10)] == [0.5, 1, 2, 4, 8, 16, 30, 30, 30, 30]
    backoff.reset()
    assert backoff.next_delay() == 0.5


# -- bookkeeping --------------------------------------------------------------------------------


def test_a_page_ends_a_wall_clock_window_after_its_delivery_whatever_its_event_time() -> None:
    pages = Pages("privwatch", active_s=3600, resend_s=60)
    weeks_ago = paging(1, "u-1", "2026-01-01T00:00:00Z")
    pages.take(weeks_ago["incident"] | {"principal_id": "u-1"})
    [post] = pages.due(now=1_000_000.0)
    assert post.ends_at == 1_003_600.0 and not post.resolve
    assert pages.unsent() == 1
    pages.delivered([post], now=1_000_000.0)
    assert pages.unsent() == 0 and pages.due(now=1_000_030.0) == []
    [resend] = pages.due(now=1_000_061.0)  # re-sent with the same end
    assert resend.ends_at == 1_003_600.0
    assert pages.due(now=1_003_600.0) == [] and not pages.pages  # over: Alertmanager ended it


def test_an_undelivered_page_is_never_resolved_and_stays_due() -> None:
    pages = Pages("privwatch", active_s=3600, resend_s=60)
    pages.take(make_alert(1))
    for now in (0.0, 10_000.0, 100_000.0):  # Alertmanager down for a day: the page is still owed, active
        [post] = pages.due(now)
        assert post.ends_at == now + 3600 and not post.resolve


def test_escalation_resolves_the_delivered_fingerprint_and_older_updates_are_ignored() -> None:
    correlator, pages = Correlator(), Pages("privwatch", active_s=3600, resend_s=60)
    first = paging(1, "u-1", "2026-11-26T09:00:00Z", correlator, level="medium")
    second = paging(2, "u-1", "2026-11-26T09:10:00Z", correlator, level="critical")
    pages.take(first["incident"] | {"principal_id": "u-1"})
    pages.delivered(pages.due(100.0), 100.0)
    pages.take(second["incident"] | {"principal_id": "u-1"})
    assert not pages.take(first["incident"] | {"principal_id": "u-1"})  # read late, from another partition
    posts = pages.due(200.0)
    assert [(p.doc["level"], p.resolve, p.ends_at) for p in posts] == [("medium", True, 200.0),
                                                                        ("critical", False, 3800.0)]


# -- the delivery loop, with a fake consumer and a fake Alertmanager --------------------------------


class Record:
    def __init__(self, value: bytes) -> None:
        self.value = value


class Consumer:
    """Hands out its records ``per_poll`` at a time; remembers commits and pauses."""

    def __init__(self, values: list[bytes], per_poll: int = 3) -> None:
        self.values, self.per_poll, self.cursor = values, per_poll, 0
        self.paused = False
        self.commits: list[int] = []
        self.tp = TopicPartition("alerts", 0)

    def assignment(self) -> set[TopicPartition]:
        return {self.tp}

    def pause(self, *tps: TopicPartition) -> None:
        self.paused = bool(tps)

    def resume(self, *tps: TopicPartition) -> None:
        self.paused = False

    def poll(self, timeout_ms: int = 0, max_records: int = 500) -> dict[TopicPartition, list[Record]]:
        if self.paused:
            return {}
        batch = self.values[self.cursor:self.cursor + min(max_records, self.per_poll)]
        self.cursor += len(batch)
        return {self.tp: [Record(v) for v in batch]} if batch else {}

    def commit(self) -> None:
        self.commits.append(self.cursor)


class FakeAlertmanager:
    def __init__(self) -> None:
        self.up = False
        self.alerts: dict[str, dict[str, Any]] = {}

    def __call__(self, connection: Connection, alerts: list[dict[str, Any]]) -> None:
        if not self.up:
            raise AlertmanagerError("ConnectionRefusedError")
        for alert in alerts:
            self.alerts[json.dumps(alert["labels"], sort_keys=True)] = alert


def delivery(post: Any, clock: list[float], **settings: Any) -> tuple[Delivery, Metrics]:
    metrics = Metrics(CollectorRegistry())
    s = Settings(alertmanager_url="http://am", runbook_base_url=RUNBOOKS, **settings)
    return Delivery(s, metrics, clock=lambda: clock[0], post=post), metrics


def test_nothing_is_committed_past_an_unsent_page_and_reading_stops_until_it_is_accepted() -> None:
    clock, am = [1_000_000.0], FakeAlertmanager()
    alerts = [paging(n, f"u-{n}", "2026-11-26T09:00:00Z") for n in range(4)] + [make_alert(9, level="low")]
    deliver, metrics = delivery(am, clock)
    deliver.consumer = consumer = Consumer([orjson.dumps(a) for a in alerts])
    assert deliver.step() == 3 and consumer.commits == []
    assert deliver.step() == 0 and consumer.paused and consumer.cursor == 3  # waits: reads nothing more
    assert sent(metrics, "failed") == 1
    clock[0] += 3600 * 5  # five hours of outage
    am.up = True
    while consumer.cursor < len(alerts) or deliver.pages.unsent():
        deliver.step()
    assert consumer.commits == [3, 5] and not consumer.paused
    ends = {a["endsAt"] for a in am.alerts.values()}
    assert len(am.alerts) == 4 and ends == {iso(clock[0] + Settings().alertmanager_active_s)}
    assert metrics.registry.get_sample_value("privwatch_alertmanager_queue") == 0


def test_pseudonymised_pages_and_summary_annotations() -> None:
    clock, am = [1_000_000.0], FakeAlertmanager()
    am.up = True
    key = "p" * 32
    alert = paging(1, "u-4821", "2026-11-26T09:00:00Z", reasons=["u-4821 exported customers.payment_methods"])
    deliver, _ = delivery(am, clock, pseudonymise="alertmanager", pseudonym_key=key, alertmanager_detail="summary")
    deliver.consumer = Consumer([orjson.dumps(alert)])
    deliver.step()
    [posted] = am.alerts.values()
    text = json.dumps(posted)
    assert "u-4821" not in text and "customers.payment_methods" not in text
    assert set(posted["annotations"]) <= {"summary", "severity", "detectors", "runbook_url", "updates"}
    full = to_alertmanager({**alert["incident"], "principal_id": "u-4821"}, runbook_base_url=RUNBOOKS)
    assert full["annotations"]["principal"] == "u-4821"
    deliver, _ = delivery(am, clock, pseudonymise="alertmanager", pseudonym_key=key)
    deliver.consumer = Consumer([orjson.dumps(paging(2, "u-4821", "2026-11-26T09:00:00Z"))])
    deliver.step()
    assert any(a["annotations"].get("principal") == pseudonym(key.encode(), "u-4821") for a in am.alerts.values())


# -- the client: authentication (a loopback server records the request) -------------------------


@pytest.fixture
def recorder() -> Iterator[tuple[str, list[dict[str, str]]]]:
    seen: list[dict[str, str]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers["Content-Length"]))
            seen.append(dict(self.headers))
            code = 401 if "Authorization" not in self.headers else 200
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()


def test_bearer_and_basic_authentication_are_sent(recorder: tuple[str, list[dict[str, str]]]) -> None:
    url, seen = recorder
    post_alerts(Connection(url, bearer_token="t0ken"), [])
    post_alerts(Connection(url, username="pw", password="s3cret"), [])
    with pytest.raises(AlertmanagerError, match="401") as refused:
        post_alerts(Connection(url), [])
    assert refused.value.retryable  # a credential being rotated must not lose pages
    assert seen[0]["Authorization"] == "Bearer t0ken"
    assert seen[1]["Authorization"] == "Basic " + base64.b64encode(b"pw:s3cret").decode()
    assert "t0ken" not in repr(Connection(url, bearer_token="t0ken"))


# -- with a real Alertmanager -------------------------------------------------------------------


@pytest.mark.integration
def test_pages_arrive_active_with_labels_annotations_and_a_wall_clock_end(alertmanager: AlertmanagerProcess) -> None:
    metrics = Metrics(CollectorRegistry())
    s = Settings(alertmanager_url=alertmanager.url, runbook_base_url=RUNBOOKS,
                 evidence_url="https://ev.example/a/{alert_id}")
    deliver = Delivery(s, metrics)
    old = paging(1, "u-4821", iso(time.time() - 30 * 86_400))  # an incident of a month ago, delivered now
    deliver.consumer = Consumer([orjson.dumps(old)])
    deliver.step()
    [got] = [a for a in alertmanager.alerts() if a["labels"]["incident_id"] == old["incident"]["incident_id"]]
    assert got["status"]["state"] == "active" and got["startsAt"] == old["ts"]
    assert got["labels"] == {"alertname": "PrivacyIncident", "detector": "volume", "level": "critical",
                             "severity": "page", "service": "privwatch", "incident_id": incident_key(old["alert_id"])}
    assert got["annotations"]["principal"] == "u-4821" and got["annotations"]["runbook_url"] == f"{RUNBOOKS}/volume.md"
    assert got["generatorURL"] == "https://ev.example/a/volume%3Au-4821%3Ae1"
    ends = time.mktime(time.strptime(got["endsAt"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    assert ends > time.time() + s.alertmanager_active_s - 600
    assert sent(metrics, "ok") == 1


@pytest.mark.integration
def test_an_alertmanager_restart_gets_its_pages_back_from_the_resends(alertmanager: AlertmanagerProcess) -> None:
    s = Settings(alertmanager_url=alertmanager.url, alertmanager_resend_s=0.5)
    deliver = Delivery(s, Metrics(CollectorRegistry()))
    deliver.consumer = Consumer([orjson.dumps(paging(1, "u-1", iso(time.time() - 300)))])
    deliver.step()
    alertmanager.stop()  # loses its in-memory alerts
    alertmanager.start()
    wait_for(lambda: deliver.step() >= 0 and len(alertmanager.alerts()) == 1, timeout_s=15)


class _NewGroupConsumer:
    """What place() asks of a consumer for a partition its group never committed."""

    def __init__(self, end: int, found: int | None) -> None:
        self.end, self.found, self.seeks = end, found, []

    def committed(self, tp: TopicPartition) -> None:
        return None

    def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self.end for tp in tps}

    def offsets_for_times(self, times: dict[TopicPartition, int]) -> dict[TopicPartition, Any]:
        from kafka.structs import OffsetAndTimestamp

        return {tp: None if self.found is None else OffsetAndTimestamp(self.found, ms, None)
                for tp, ms in times.items()}

    def pause(self, *tps: TopicPartition) -> None:
        pass

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append((tp.partition, offset))


@pytest.mark.parametrize(("end", "found", "start"), [(0, None, 0), (40, None, 40), (40, 12, 12), (40, 55, 40)])
def test_a_new_group_starts_at_a_number_so_no_page_written_meanwhile_is_skipped(end, found, start) -> None:
    """With no page in the active window the start is the end offset as read, not seek_to_end (which
    resolves later, past pages the service writes meanwhile); with one, the earliest such page."""
    from stream.alertmanager.deliver import NewPartitions

    deliver, _ = delivery(FakeAlertmanager(), [1_000_000.0])
    deliver.consumer = consumer = _NewGroupConsumer(end, found)
    deliver.new_partitions = NewPartitions(consumer)
    deliver.new_partitions.on_partitions_assigned([TopicPartition("alerts", 0)])
    assert deliver.place() == set() and consumer.seeks == [(0, start)]
