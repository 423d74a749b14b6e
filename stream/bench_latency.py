"""End-to-end latency for ``privwatch bench``: a paced producer and an alert listener, in their own process.

Background events (simulated, re-stamped to the wall clock so the merger sees a live stream) go to
the input topics at a fixed rate; every ``1 / probe_rate`` seconds a probe goes with them: a
principal that grants itself a privileged role, which the privilege detector pages on without any
history. Each probe has its own principal, so the per-principal cooldown never hides one. Latency is
the time from ``send()`` of a probe to the consumption of its alert from the alerts topic, both
read from this process's clock.

It runs in a separate (spawned) process so that producing and listening do not take the GIL from
the pipeline under test.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

import orjson

#: Pacing granularity: events are sent in small bursts every tick.
TICK_S = 0.01
#: How long to wait for the alerts of the last probes once producing stops.
DRAIN_S = 5.0


def iso_now(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def probe_event(run_id: str, i: int, ts: str) -> dict[str, Any]:
    """A self-grant of a privileged role without a ticket: pages at once (privilege detector rules)."""
    who = {"id": f"bench-probe-{run_id}-{i}", "kind": "human", "department": "bench", "role": "analyst"}
    return {"type": "permission", "event_id": f"probe-{run_id}-{i}", "ts": ts, "actor": who, "target": who,
            "change": "grant", "permission": "admin", "privileged": True, "outcome": "allowed",
            "ticket": None, "source": {"ip": "10.9.9.9", "country": "GB"}}


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of a non-empty list.

    >>> percentile([1.0, 2.0, 3.0, 4.0], 50), percentile([1.0, 2.0, 3.0, 4.0], 99)
    (2.0, 4.0)
    """
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


class _Listener(threading.Thread):
    """Consumes the alerts topic from its end and notes when each probe's alert arrives."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(daemon=True)
        from kafka import KafkaConsumer, TopicPartition

        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                      fetch_max_wait_ms=10)
        tps = [TopicPartition(topic, p) for p in sorted(self.consumer.partitions_for_topic(topic) or ())]
        self.consumer.assign(tps)
        self.consumer.seek_to_end(*tps)
        for tp in tps:
            self.consumer.position(tp)  # resolve "end" now, before the first probe is sent
        self.received: dict[str, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            for records in self.consumer.poll(timeout_ms=20).values():
                now = time.time()
                for record in records:
                    alert_id = record.key.decode() if record.key else ""
                    if alert_id.startswith("privilege:bench-probe-"):
                        self.received.setdefault(alert_id, now)
        self.consumer.close()


def _send(producer: Any, topics: tuple[str, str], doc: dict[str, Any]) -> None:
    who = doc["principal"] if doc["type"] == "access" else doc["target"]
    topic = topics[0] if doc["type"] == "access" else topics[1]
    producer.send(topic, key=who["id"].encode(), value=orjson.dumps(doc))


def measure(bootstrap: str, topics: tuple[str, str], alerts_topic: str, background: list[dict[str, Any]],
            rate: float, probe_rate: float, seconds: float, run_id: str) -> dict[str, Any]:
    """Produce at ``rate`` events/s (probes included) for ``seconds``; return the latency summary."""
    from kafka import KafkaProducer

    listener = _Listener(bootstrap, alerts_topic)
    listener.start()
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=2)
    sent_at: dict[str, float] = {}
    start = time.time()
    sent = 0
    next_probe = start
    while (now := time.time()) < start + seconds:
        stamp = iso_now(now)
        due = int((now - start) * rate) - sent
        for _ in range(max(0, due)):
            base = background[sent % len(background)]
            _send(producer, topics, {**base, "ts": stamp, "event_id": f"{base['event_id']}-L{sent}"})
            sent += 1
        if now >= next_probe:
            i = len(sent_at)
            probe = probe_event(run_id, i, stamp)
            sent_at[f"privilege:{probe['target']['id']}:{probe['event_id']}"] = time.time()
            _send(producer, topics, probe)
            sent += 1
            next_probe += 1.0 / probe_rate
        time.sleep(TICK_S)
    producer.flush()
    producer.close()
    deadline = time.time() + DRAIN_S
    while time.time() < deadline and len(listener.received) < len(sent_at):
        time.sleep(0.05)
    listener.stop.set()
    listener.join(timeout=5)
    return summarise(sent_at, listener.received, sent / seconds)


def summarise(sent_at: dict[str, float], received: dict[str, float], achieved_rate: float) -> dict[str, Any]:
    latencies = [(received[k] - t) * 1000.0 for k, t in sent_at.items() if k in received]
    summary: dict[str, Any] = {"achieved_rate_events_per_s": round(achieved_rate, 1),
                               "probes_sent": len(sent_at), "probe_alerts_received": len(latencies)}
    if latencies:
        summary.update(p50_ms=round(percentile(latencies, 50), 1), p99_ms=round(percentile(latencies, 99), 1),
                       max_ms=round(max(latencies), 1))
    return summary


def child(queue: Any, *args: Any) -> None:
    """Process entry point: put the summary (or the error text) on ``queue``."""
    try:
        queue.put(measure(*args))
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails the bench
        queue.put({"error": f"{type(exc).__name__}: {exc}"})
