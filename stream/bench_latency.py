"""End-to-end latency for ``privwatch bench``: a paced producer and an alert listener, in their own process.

Background events continue the pre-filled organisation's history: its last week, replayed one week
later, then two weeks later, and so on (whole weeks, so hours of the day and days of the week keep
their meaning), with fresh event ids. Each principal therefore keeps its own pace in event time, and
the service sees the steady state it reached during the throughput phase, at whatever rate is asked.
(It used to see the first 20k events re-stamped to the wall clock and looped every second or two:
every principal did a day's work per second, and the latency phase measured an alert storm of about
1,200 alerts per second rather than the time to raise one.)

Every ``rate / probe_rate`` records, one is a probe (:func:`probe_every`), stamped with the
background's current event time: a principal that grants itself a privileged role, which the
privilege detector pages on without any history. Each probe has its own principal, so the
per-principal cooldown never hides one. Latency is the time from ``send()`` of a probe to the
consumption of its alert from the alerts topic, both read from this process's clock.

It runs in a separate (spawned) process so that producing and listening do not take the GIL from
the pipeline under test. Records are pre-encoded (only the event id and time are spliced in) and
partitioned once per key, so the producer takes as little of the machine's CPU as it can.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson

#: The background replays whole weeks of the history (see the module docstring).
WEEK_S = 7 * 86_400.0
#: Pacing granularity: events are sent in small bursts every tick.
TICK_S = 0.01
#: How long to wait for the alerts of the last probes once producing stops.
DRAIN_S = 5.0


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Template(NamedTuple):
    """One background record, encoded except for its event id and time."""

    topic: int  # 0: access, 1: permission
    key: bytes
    ts: float
    head: bytes  # b'{"type":"access"'
    tail: bytes  # b',"principal":{...},...}': the other members, through the closing brace

    def value(self, event_id: str, stamp: str) -> bytes:
        return b"".join((self.head, b',"event_id":"', event_id.encode(), b'","ts":"', stamp.encode(), b'"',
                         self.tail))


def templates(history: list[dict[str, Any]]) -> list[Template]:
    """The history's last week (all of it if shorter), as :class:`Template` records in event-time order.

    >>> t = templates([{"type": "access", "event_id": "e1", "ts": "2026-10-01T00:00:00Z",
    ...                 "principal": {"id": "u1"}, "action": "read"}])[0]
    >>> orjson.loads(t.value("x", "2026-10-08T00:00:00Z"))["ts"], t.key, t.topic
    ('2026-10-08T00:00:00Z', b'u1', 0)
    >>> orjson.loads(Template(1, b"u1", 0.0, b'{"type":"permission"', b"}").value("x", "T"))
    {'type': 'permission', 'event_id': 'x', 'ts': 'T'}
    """
    def ts_of(doc: dict[str, Any]) -> float:
        return datetime.fromisoformat(doc["ts"].replace("Z", "+00:00")).timestamp()

    stamps = [ts_of(doc) for doc in history]
    since = max(stamps) - WEEK_S
    out = []
    for doc, ts in zip(history, stamps, strict=True):
        if ts <= since:
            continue
        who = doc["principal"] if doc["type"] == "access" else doc["target"]
        rest = {k: v for k, v in doc.items() if k not in ("type", "event_id", "ts")}
        tail = b"," + orjson.dumps(rest)[1:] if rest else b"}"
        out.append(Template(0 if doc["type"] == "access" else 1, who["id"].encode(), ts,
                            orjson.dumps({"type": doc["type"]})[:-1], tail))
    out.sort(key=lambda t: t.ts)
    return out


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


class _Sender:
    """Sends pre-encoded records to the partition Kafka's default partitioner picks (murmur2 of the key,
    computed once per key instead of once per record)."""

    def __init__(self, producer: Any, topics: tuple[str, str]) -> None:
        from kafka.partitioner.default import murmur2

        self.producer, self.topics, self.murmur2 = producer, topics, murmur2
        self.partitions = [len(producer.partitions_for(topic)) for topic in topics]
        self.cache: dict[tuple[int, bytes], int] = {}

    def send(self, topic: int, key: bytes, value: bytes) -> None:
        partition = self.cache.get((topic, key))
        if partition is None:
            partition = self.cache[topic, key] = (self.murmur2(key) & 0x7FFFFFFF) % self.partitions[topic]
        self.producer.send(self.topics[topic], key=key, value=value, partition=partition)


def probe_every(rate: float, probe_rate: float) -> int:
    """Every how many records a probe takes the slot: probes are counted in the stream, not timed by
    the wall clock, so a generator that falls behind and catches up in bursts still sends one per
    ``1 / probe_rate`` seconds of paced traffic (a timed probe was skipped during each long burst).

    >>> probe_every(10_000, 10), probe_every(5, 10)
    (1000, 2)
    """
    return max(2, round(rate / probe_rate))


def measure(bootstrap: str, topics: tuple[str, str], alerts_topic: str, background: list[Template],
            rate: float, probe_rate: float, seconds: float, run_id: str) -> dict[str, Any]:
    """Produce at ``rate`` events/s (probes included) for ``seconds``; return the latency summary."""
    from kafka import KafkaProducer

    listener = _Listener(bootstrap, alerts_topic)
    listener.start()
    # kafka-python spends 45-55 us of CPU per record sent: on a 2-core machine this process competes
    # with the service and the broker, so it batches as much as 5 ms allows (measured -15% CPU)
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, batch_size=64 << 10)
    sender = _Sender(producer, topics)
    sent_at: dict[str, float] = {}
    start = time.time()
    sent = replayed = 0
    every = probe_every(rate, probe_rate)
    event_ts = background[0].ts
    while (now := time.time()) < start + seconds:
        due = int((now - start) * rate) - sent
        for _ in range(max(0, due)):
            if sent % every == every - 1:
                probe = probe_event(run_id, len(sent_at), iso(event_ts))
                sent_at[f"privilege:{probe['target']['id']}:{probe['event_id']}"] = time.time()
                sender.send(1, probe["target"]["id"].encode(), orjson.dumps(probe))
            else:
                cycle, i = divmod(replayed, len(background))
                t = background[i]
                event_ts = t.ts + (cycle + 1) * WEEK_S
                if event_ts > now:
                    raise RuntimeError(f"the background history ran out after {replayed} events (the next one is "
                                       "in the future); pre-fill an older history")
                sender.send(t.topic, t.key, t.value(f"bench-{run_id}-{replayed}", iso(event_ts)))
                replayed += 1
            sent += 1
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
    """Percentiles, and every probe's latency in the order the probes were sent (to see stalls)."""
    latencies = [(received[k] - t) * 1000.0 for k, t in sent_at.items() if k in received]
    summary: dict[str, Any] = {"achieved_rate_events_per_s": round(achieved_rate, 1),
                               "probes_sent": len(sent_at), "probe_alerts_received": len(latencies)}
    if latencies:
        summary.update(p50_ms=round(percentile(latencies, 50), 1), p99_ms=round(percentile(latencies, 99), 1),
                       max_ms=round(max(latencies), 1), latencies_ms=[round(x, 1) for x in latencies])
    return summary


def child(queue: Any, *args: Any) -> None:
    """Process entry point: put the summary (or the error text) on ``queue``."""
    try:
        queue.put(measure(*args))
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails the bench
        queue.put({"error": f"{type(exc).__name__}: {exc}"})
