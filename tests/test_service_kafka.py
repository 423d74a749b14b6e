"""The service against the real broker: alerts out, dead letters, graceful stop and resume."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time

import orjson
import pytest
from factories import T0, access, permission, routine_then_bulk
from kafka_helpers import committed, principal_key, produce, read_all
from prometheus_client import CollectorRegistry

from detectors.engine import Engine
from detectors.events import Event
from stream.ops.metrics import Metrics
from stream.service.service import Service
from stream.settings import Settings

pytestmark = pytest.mark.integration


def _settings(bootstrap: str, topics: dict[str, str], group: str, **extra) -> Settings:
    return Settings(
        bootstrap_servers=bootstrap, group_id=group, access_topic=topics["access"],
        permission_topic=topics["permission"], alerts_topic=topics["alerts"],
        dead_letter_topic=topics["dead-letter"], feedback_topic=topics["feedback"], state_topic=topics["state"],
        metrics_port=0, commit_interval_ms=200, merge_wait_ms=100, durable_state=False, **extra,
    )


def _run_service(settings: Settings, max_idle_s: float = 4.0) -> tuple[Service, Metrics]:
    metrics = Metrics(CollectorRegistry(), ["volume"])
    service = Service(settings, metrics)
    thread = threading.Thread(target=service.run, kwargs={"max_idle_s": max_idle_s})
    thread.start()
    thread.join(timeout=120)
    assert not thread.is_alive(), "service did not stop"
    return service, metrics


def _value(metrics: Metrics, name: str, **labels) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_events_in_alerts_out(kafka_bootstrap, fresh_topics, group_id):
    topics = fresh_topics(n_partitions=3)
    docs = routine_then_bulk("u-100") + routine_then_bulk("u-200", days=5)
    produce(kafka_bootstrap, topics["access"], docs, principal_key)
    _, metrics = _run_service(_settings(kafka_bootstrap, topics, group_id))
    alerts = read_all(kafka_bootstrap, topics["alerts"])
    paging = {r.key.decode(): orjson.loads(r.value) for r in alerts
              if orjson.loads(r.value)["level"] in {"medium", "high", "critical"}}
    assert {a["evidence_event_ids"][-1] for a in paging.values()} == {"u-100-bulk", "u-200-bulk"}
    assert all(key == alert["alert_id"] for key, alert in paging.items())
    assert _value(metrics, "privwatch_events_consumed_total", type="access", outcome="processed") == len(docs)


def test_malformed_records_go_to_dead_letter_with_reason(kafka_bootstrap, fresh_topics, group_id):
    topics = fresh_topics(n_partitions=3)
    good = [access(f"g{i}", T0 + i, f"u-{i % 7}") for i in range(200)]
    bad = [b"{broken", b"[]", orjson.dumps(access("x", T0) | {"records": -5}), "\u2603".encode(), b"null"]
    produce(kafka_bootstrap, topics["access"], good[:100] + bad + good[100:], principal_key)
    _, metrics = _run_service(_settings(kafka_bootstrap, topics, group_id))
    letters = read_all(kafka_bootstrap, topics["dead-letter"], expect=len(bad))
    assert sorted(r.value for r in letters) == sorted(bad)
    for record in letters:
        headers = dict(record.headers)
        assert headers["privwatch.reason"] in {b"malformed_json", b"schema"}
        assert headers["privwatch.source.topic"] == topics["access"].encode()
        assert int(headers["privwatch.source.offset"]) >= 0
    processed = _value(metrics, "privwatch_events_consumed_total", type="access", outcome="processed")
    dead = _value(metrics, "privwatch_events_consumed_total", type="access", outcome="dead_lettered")
    assert (processed, dead) == (len(good), len(bad))
    offsets = committed(kafka_bootstrap, group_id, [topics["access"]])
    assert sum(offsets.values()) == processed + dead


def _spawn(settings_args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "stream", "run", *settings_args],
                            stderr=subprocess.PIPE, text=True, env=os.environ | {"PYTHONUNBUFFERED": "1"})


def _handled(stderr: str) -> int:
    match = re.search(r"stopped cleanly handled=(\d+)", stderr)
    assert match, stderr[-3000:]
    return int(match.group(1))


def test_sigterm_commits_exactly_what_was_processed_and_restart_resumes(kafka_bootstrap, fresh_topics, group_id):
    topics = fresh_topics(n_partitions=3)
    docs = [access(f"e{i}", T0 + i, f"u-{i % 50}", action="read", records=1 + i % 5) for i in range(60_000)]
    produce(kafka_bootstrap, topics["access"], docs, principal_key)
    s = _settings(kafka_bootstrap, topics, group_id, max_poll_records=200)
    args = ["--bootstrap-servers", kafka_bootstrap, "--group-id", group_id, "--metrics-port", "0",
            "--max-poll-records", "200", "--commit-interval-ms", "200", "--no-durable-state"]
    args += [f"--{k.replace('_', '-')}" + f"={getattr(s, k)}" for k in (
        "access_topic", "permission_topic", "alerts_topic", "dead_letter_topic", "feedback_topic", "state_topic")]
    proc = _spawn(args)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and sum(committed(kafka_bootstrap, group_id, [s.access_topic]).values()) == 0:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr[-3000:]
    first = _handled(stderr)
    offsets = committed(kafka_bootstrap, group_id, [s.access_topic])
    assert sum(offsets.values()) == first
    assert 0 < first < len(docs), "SIGTERM should land mid-stream"

    proc = _spawn([*args, "--max-idle-s", "3"])
    _, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 0, stderr[-3000:]
    assert first + _handled(stderr) == len(docs)
    assert sum(committed(kafka_bootstrap, group_id, [s.access_topic]).values()) == len(docs)


def test_input_fetches_follow_the_fetch_settings(kafka_bootstrap, fresh_topics, group_id):
    """The input consumer asks the broker for ``fetch_min_bytes`` at a time; a trickle far below that
    is still read, after ``fetch_max_wait_ms``. The feedback reader keeps Kafka's 1-byte fetches."""
    topics = fresh_topics(n_partitions=1)
    docs = [access(f"e{i}", T0 + i, "u-1") for i in range(5)]
    produce(kafka_bootstrap, topics["access"], docs, principal_key)
    settings = _settings(kafka_bootstrap, topics, group_id, fetch_min_bytes=8 << 20, fetch_max_wait_ms=100)
    service, metrics = _run_service(settings, max_idle_s=2.0)
    assert (service.consumer.config["fetch_min_bytes"], service.consumer.config["fetch_max_wait_ms"]) == (8 << 20, 100)
    assert service.feedback_reader is not None and service.feedback_reader.consumer.config["fetch_min_bytes"] == 1
    assert _value(metrics, "privwatch_events_consumed_total", type="access", outcome="processed") == len(docs)


def test_a_backlog_is_merged_in_event_time_order_however_long_the_catch_up(kafka_bootstrap, fresh_topics, group_id):
    """Catching up: a permission record comes with the first fetches, ahead of 30k access records of its
    partition that precede it in event time, read 50 a poll (about a second). The access partition is
    known to have records to fetch, so the permission record waits for them all, far beyond
    merge_wait_ms, and is handled last; none is released early (before: after 200 ms, ahead of most of
    them, as a grant ahead of reads that happened before it)."""
    topics = fresh_topics(n_partitions=1)
    produce(kafka_bootstrap, topics["permission"], [permission("p0", T0 + 40_000, "u-1")], principal_key)
    produce(kafka_bootstrap, topics["access"], [access(f"a{i}", T0 + i, f"u-{i % 50}") for i in range(30_000)],
            principal_key)
    seen: list[str] = []

    class Recording(Engine):
        def process(self, event: Event, detected_at: float | None = None) -> list[dict]:
            seen.append(event.event_id)
            return super().process(event, detected_at)

    metrics = Metrics(CollectorRegistry(), ["volume"])
    settings = _settings(kafka_bootstrap, topics, group_id, max_poll_records=50)
    settings = settings.model_copy(update={"merge_wait_ms": 200})
    service = Service(settings, metrics)
    service.partitions.make_engine = Recording
    thread = threading.Thread(target=service.run, kwargs={"max_idle_s": 4.0})
    thread.start()
    thread.join(timeout=120)
    assert not thread.is_alive(), "service did not stop"
    assert len(seen) == 30_001 and seen[-1] == "p0"
    assert _value(metrics, "privwatch_merge_timeouts_total") == 0
