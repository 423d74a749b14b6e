"""Shared pieces of the state tests against the real broker: input streams, running the service,
reading the final snapshots back, and a reference run to compare alerts with."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
from factories import T0, access
from kafka import KafkaConsumer, TopicPartition
from kafka_helpers import read_all
from prometheus_client import CollectorRegistry
from state_runner import fast_group_timeouts

from detectors.engine import Engine
from stream.kafka import clients
from stream.ops.metrics import Metrics
from stream.service.durable import committed_anchors
from stream.service.service import Service
from stream.settings import Settings
from stream.state.store import StateStore

KEY = "test-state-key-0123456789abcdef"
RUNNER = Path(__file__).resolve().parent / "state_runner.py"
DEPARTMENTS = ("support", "sales", "finance", "engineering", "hr")
RESOURCES = ("customers.profile", "customers.payment", "orders.history", "hr.salaries", "tickets.messages",
             "crm.contacts", "reports.quarterly")
COUNTRIES = ("GB", "DE", "FR", "US", "NL")


def state_docs(n_events: int, n_principals: int, days: float = 8.0, seed: int = 11) -> list[dict[str, Any]]:
    """Access events in time order over ``days``: many principals with their own departments, usual
    resources, home country and device; now and then something new (resource, country, device) or a
    large export, so novelty, context and volume alerts happen."""
    rnd = random.Random(seed)
    people = [(f"u-{i:04d}", DEPARTMENTS[i % len(DEPARTMENTS)], rnd.sample(RESOURCES, 2), COUNTRIES[i % 3])
              for i in range(n_principals)]
    docs = []
    step = days * 86_400 / n_events
    for n in range(n_events):
        pid, dept, usual, home = people[rnd.randrange(n_principals)]
        late = n > n_events // 2
        resource = usual[n % 2] if not (late and rnd.random() < 0.04) else rnd.choice(RESOURCES)
        country = home if not (late and rnd.random() < 0.02) else rnd.choice(COUNTRIES)
        action = "export" if rnd.random() < 0.1 else "read"
        records = rnd.randint(1, 30) if not (late and rnd.random() < 0.003) else 200_000
        doc = access(f"e{n}", T0 + n * step, pid, action=action, records=records, bytes=records * 700)
        doc["principal"]["department"] = dept
        doc["resource"]["id"] = resource
        doc["source"]["country"] = country
        docs.append(doc)
    return docs


def input_counts(docs: list[dict[str, Any]]) -> Counter[str]:
    return Counter(d["principal"]["id"] for d in docs)


def settings(bootstrap: str, topics: dict[str, str], group: str, **extra: Any) -> Settings:
    values: dict[str, Any] = dict(
        bootstrap_servers=bootstrap, group_id=group, access_topic=topics["access"],
        permission_topic=topics["permission"], alerts_topic=topics["alerts"],
        dead_letter_topic=topics["dead-letter"], feedback_topic=topics["feedback"], state_topic=topics["state"],
        metrics_port=0, commit_interval_ms=200, merge_wait_ms=100, snapshot_interval_s=1.0, state_key=KEY,
        max_poll_records=500,
    )
    values.update(commons_settings(topics))
    values.update(extra)
    return Settings(**values)


def commons_settings(topics: dict[str, str]) -> dict[str, Any]:
    """The commons topic when the test made one; otherwise partials are shared within an instance only."""
    return {"commons_topic": topics["commons"]} if "commons" in topics else {"commons_interval_s": 0.0}


#: each partition's baselines its own (docs/commons.md): alerts then do not depend on where partitions
#: run or when other partitions' partials arrive, for tests that compare alert ids between runs
UNSHARED = {"commons_interval_s": 0.0}


def cli_args(s: Settings) -> list[str]:
    args = ["run"]
    for name in ("bootstrap_servers", "group_id", "access_topic", "permission_topic", "alerts_topic",
                 "dead_letter_topic", "feedback_topic", "state_topic", "commit_interval_ms", "merge_wait_ms",
                 "snapshot_interval_s", "max_poll_records", "metrics_port", "commons_topic", "commons_interval_s"):
        args.append(f"--{name.replace('_', '-')}={getattr(s, name)}")
    if s.state_key is not None:  # a secret: from a file, never a flag
        with tempfile.NamedTemporaryFile("w", suffix=".key", delete=False) as fh:
            fh.write(s.state_key.get_secret_value())
        args.append(f"--state-key-file={fh.name}")
    else:
        args.append("--no-durable-state")
    return args


def spawn(args: list[str], stderr_path: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(RUNNER), *args], stderr=stderr_path.open("a"),
                            stdout=subprocess.DEVNULL, env=os.environ | {"PYTHONUNBUFFERED": "1"})


class Running:
    """A Service in a thread of this process."""

    def __init__(self, s: Settings, max_idle_s: float | None = None) -> None:
        fast_group_timeouts()
        self.metrics = Metrics(CollectorRegistry(), [])
        self.service = Service(s, self.metrics)
        self.result: list[Any] = []
        self.thread = threading.Thread(target=self._run, args=(max_idle_s,), daemon=True)
        self.thread.start()

    def _run(self, max_idle_s: float | None) -> None:
        try:
            self.result.append(self.service.run(max_idle_s=max_idle_s))
        except BaseException as exc:  # noqa: BLE001 - reported by join()
            self.result.append(exc)

    def stop(self, timeout_s: float = 60.0) -> Any:
        self.service.request_stop()
        return self.join(timeout_s)

    def join(self, timeout_s: float = 120.0) -> Any:
        self.thread.join(timeout_s)
        if self.thread.is_alive():
            import traceback

            frame = sys._current_frames().get(self.thread.ident or 0)
            stack = "".join(traceback.format_stack(frame)) if frame else "?"
            raise AssertionError(f"service did not stop in {timeout_s:.0f}s; handled={self.service.handled_total}"
                                 f" pending={self.service.partitions.restoring}\n{stack}")
        assert self.result and self.result[0] == 0, self.result
        return self.result[0]

    def value(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, labels) or 0.0


def run_to_end(s: Settings, max_idle_s: float = 3.0, timeout_s: float = 240.0) -> Running:
    running = Running(s, max_idle_s=max_idle_s)
    running.join(timeout_s)
    return running


def reference_alert_ids(bootstrap: str, topics: dict[str, str], alerts_topic: str, **extra: Any) -> set[str]:
    """Alert ids of one uninterrupted run over the same input, with a fresh group and no state."""
    s = settings(bootstrap, topics, f"ref-{uuid.uuid4().hex[:8]}", alerts_topic=alerts_topic, state_key=None,
                 durable_state=False, snapshot_interval_s=30.0, **extra)
    run_to_end(s)
    return alert_ids(bootstrap, alerts_topic)


def alert_ids(bootstrap: str, topic: str) -> set[str]:
    """Alert ids on ``topic``; every record is keyed by its alert's id, duplicates included."""
    ids = set()
    for record in read_all(bootstrap, topic):
        alert = orjson.loads(record.value)
        assert record.key.decode() == alert["alert_id"]
        ids.add(alert["alert_id"])
    return ids


def alerts_by_detector(bootstrap: str, topic: str) -> dict[str, dict[str, Any]]:
    return {orjson.loads(r.value)["alert_id"]: orjson.loads(r.value) for r in read_all(bootstrap, topic)}


def snapshot_counts(bootstrap: str, topics: dict[str, str], group: str, partitions: int = 3) -> dict[str, int]:
    """Per-principal ``n_events`` in the state the group's commits name, for every partition."""
    group_consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        anchors = committed_anchors(group_consumer, [topics["access"], topics["permission"]])
        reader = Settings(bootstrap_servers=bootstrap, metrics_port=0)
        store = StateStore(None, lambda: clients.consumer(reader, group_id=None), topics["state"], group,
                           KEY.encode(), committed=anchors, partitions=partitions)
        counts: dict[str, int] = {}
        for p in range(partitions):
            restored = store.restore(p, Engine)
            assert restored is not None, f"no state for partition {p}"
            for pid, profile in restored.engine.profiles.items():
                assert pid not in counts, "a principal in two partitions"
                counts[pid] = profile.n_events
    finally:
        group_consumer.close()
    return counts


def latest_records(bootstrap: str, topic: str, partition: int, prefix: bytes = b"") -> dict[bytes, bytes | None]:
    """Each key's latest value under ``prefix`` on one partition of a topic (what compaction keeps)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    tp = TopicPartition(topic, partition)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    end = consumer.end_offsets([tp])[tp]
    latest: dict[bytes, bytes | None] = {}
    while consumer.position(tp) < end:
        for record in consumer.poll(timeout_ms=1000).get(tp, []):
            if record.key.startswith(prefix):
                latest[record.key] = record.value
    consumer.close()
    return latest


def wait_until(predicate: Any, timeout_s: float, what: str, every_s: float = 0.3) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(every_s)
    raise AssertionError(f"timed out waiting for {what}")
