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
per-principal cooldown never hides one. Latency is the time from handing a probe to the sender
(its line goes down the console producer's pipe at the end of the same tick) to the consumption of
its alert from the alerts topic, both read from this process's clock.

It runs in a separate (spawned) process so that producing and listening do not take the GIL from the
pipeline under test. Records are pre-encoded (only the event id and time are spliced in). They are
sent by Kafka's own console producer (:mod:`stream.bench.sender`: ``kafka-tools``, one JVM per input
topic, fed through a pipe), which takes about 0.2 of a core at 10k events/s where kafka-python took
0.75: on a 2-core machine shared with the broker and the service, kafka-python's generator took CPU
the service under test needed, and the measured latency was partly the generator's.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from stream.bench import cpustat
from stream.bench import stages as bench_stages
from stream.bench import timeline as bench_timeline
from stream.bench.sender import DEFAULT_LIBS, ConsoleSender
from stream.bench.stages import percentile

#: The background replays whole weeks of the history (see the module docstring).
WEEK_S = 7 * 86_400.0
#: Pacing granularity: events are sent in small bursts every tick.
TICK_S = 0.01
#: Unmeasured pacing at the full rate before the measured window (see :func:`measure`). With 3 s, the
#: first seconds measured on a freshly started broker were the two console-producer JVMs and the
#: broker's still compiling: the rest of the machine took 0.9-1.3 of its 2 CPUs, the service got 0.54
#: of a core and its probes waited up to 299 ms (869 ms in an earlier run), against 0.6-0.8 CPUs and
#: about 100 ms from then on. With 10 s on a fresh broker, the window's first seconds looked like the rest.
WARMUP_S = 10.0
#: Before that, one record every so often until the generator and the service answer (:func:`wait_ready`).
READY_TICK_S = 0.1
READY_TIMEOUT_S = 60.0
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


def send_probe(sender: ConsoleSender, run_id: str, i: int, ts: str) -> str:
    """Send :func:`probe_event` on the permission topic; return the id of the alert it pages with, without
    its MAC tag (the listener drops it too: the bench need not know the service's alert-id key)."""
    probe = probe_event(run_id, i, ts)
    sender.send(1, probe["target"]["id"].encode(), orjson.dumps(probe))
    return f"privilege:{probe['target']['id']}:{probe['event_id']}"


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
        #: each probe alert's record timestamp: when the service handed it to its producer (CreateTime)
        self.created: dict[str, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            for records in self.consumer.poll(timeout_ms=20).values():
                now = time.time()
                for record in records:
                    # the alert id without its MAC tag (detectors/alerts.py): what send_probe predicts
                    alert_id = record.key.decode().rpartition(":")[0] if record.key else ""
                    if alert_id.startswith("privilege:bench-probe-") and alert_id not in self.received:
                        self.received[alert_id] = now
                        self.created[alert_id] = record.timestamp / 1000.0
        self.consumer.close()


def probe_every(rate: float, probe_rate: float) -> int:
    """Every how many records a probe takes the slot: probes are counted in the stream, not timed by
    the wall clock, so a generator that falls behind and catches up in bursts still sends one per
    ``1 / probe_rate`` seconds of paced traffic (a timed probe was skipped during each long burst).

    >>> probe_every(10_000, 10), probe_every(5, 10)
    (1000, 2)
    """
    return max(2, round(rate / probe_rate))


class Background:
    """The pre-filled history's last week, replayed one week later, then two, ... with fresh event ids."""

    def __init__(self, templates: list[Template], run_id: str) -> None:
        self.templates, self.run_id = templates, run_id
        self.replayed = 0
        self.event_ts = templates[0].ts

    def next(self, now: float) -> tuple[int, bytes, bytes]:
        """(topic, key, value) of the next record; ``now`` (wall clock) bounds its event time."""
        cycle, i = divmod(self.replayed, len(self.templates))
        t = self.templates[i]
        self.event_ts = t.ts + (cycle + 1) * WEEK_S
        if self.event_ts > now:
            raise RuntimeError(f"the background history ran out after {self.replayed} events (the next one is "
                               "in the future); pre-fill an older history")
        value = t.value(f"bench-{self.run_id}-{self.replayed}", iso(self.event_ts))
        self.replayed += 1
        return t.topic, t.key, value


def pace(sender: ConsoleSender, background: Background, rate: float, seconds: float,
         probes: dict[str, float] | None = None, every: int = 0) -> int:
    """Send at ``rate`` records/s for ``seconds``, in bursts every :data:`TICK_S`; with ``probes``, one
    record in ``every`` is a probe, its send time noted under its alert id. Returns the records sent."""
    start = time.time()
    sent = 0
    while (now := time.time()) < start + seconds:
        due = int((now - start) * rate) - sent
        for _ in range(max(0, due)):
            if probes is not None and sent % every == every - 1:
                handed_at = time.time()
                probes[send_probe(sender, background.run_id, len(probes), iso(background.event_ts))] = handed_at
            else:
                sender.send(*background.next(now))
            sent += 1
        sender.flush()
        time.sleep(TICK_S)
    return sent


def wait_ready(sender: ConsoleSender, background: Background, bootstrap: str, access_topic: str,
               listener: _Listener) -> float:
    """Trickle records until each topic's producer delivers: a probe of its own on the permission topic
    (its alert must come back, so the service answers too) and background records until the access
    topic grows. The console producer's JVMs take a second or more of CPU each to start; records paced
    at the full rate meanwhile would wait in the pipe and reach the service as one burst. Returns the
    seconds it took."""
    from kafka import KafkaConsumer, TopicPartition

    started = time.time()
    offsets = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        tps = [TopicPartition(access_topic, p) for p in sorted(offsets.partitions_for_topic(access_topic) or ())]
        before = sum(offsets.end_offsets(tps).values())
        alert_id = send_probe(sender, f"{background.run_id}-ready", 0, iso(background.event_ts))
        while alert_id not in listener.received or sum(offsets.end_offsets(tps).values()) <= before:
            if time.time() > started + READY_TIMEOUT_S:
                raise RuntimeError(f"the load generator ({sender.name}) and the service were not ready after "
                                   f"{READY_TIMEOUT_S:.0f} s")
            sender.check()
            sender.send(*background.next(time.time()))
            sender.flush()
            time.sleep(READY_TICK_S)
    finally:
        offsets.close()
    return time.time() - started


def measure(bootstrap: str, topics: tuple[str, str], alerts_topic: str, templates: list[Template],
            rate: float, probe_rate: float, seconds: float, run_id: str, service_pid: int,
            libs: Path = DEFAULT_LIBS) -> dict[str, Any]:
    """Produce at ``rate`` events/s (probes included) for ``seconds``; return the latency summary,
    with the CPU use of the machine and of the service's process (``service_pid``) over those seconds,
    and second by second (:mod:`stream.bench.timeline`).

    Before that, not measured: :func:`wait_ready`, then :data:`WARMUP_S` at the same rate without
    probes (the JVMs compile their hot code then)."""
    listener = _Listener(bootstrap, alerts_topic)
    listener.start()
    sender = ConsoleSender(bootstrap, topics, libs)
    background = Background(templates, run_id)
    sent_at: dict[str, float] = {}
    try:
        ready_s = wait_ready(sender, background, bootstrap, topics[0], listener)
        pace(sender, background, rate, WARMUP_S)
        timeline = bench_timeline.Timeline(service_pid)
        first = timeline.begin()
        sent = pace(sender, background, rate, seconds, sent_at, probe_every(rate, probe_rate))
        last = timeline.finish()
    except BaseException:
        sender.kill()
        listener.stop.set()
        raise
    sender.close()
    deadline = time.time() + DRAIN_S
    while time.time() < deadline and unanswered(sent_at, listener.received):
        time.sleep(0.05)
    listener.stop.set()
    listener.join(timeout=5)
    per_second = bench_timeline.seconds(timeline.samples, sent_at, listener.received)
    produced = bench_stages.produced_at(bootstrap, topics[1], f"bench-probe-{run_id}-", first.at - 1.0)
    stages = bench_stages.split(sent_at, produced, listener.created, listener.received)
    return {**summarise(sent_at, listener.received, sent / seconds), "generator": sender.name,
            "stages_ms": stages,
            "ready_s": round(ready_s, 2), "warmup_s": WARMUP_S, "started_at": round(first.at, 3),
            "machine": cpustat.busy_between(first.machine, last.machine),
            "service_cpu_busy": cpustat.share(first.service_s, last.service_s, last.at - first.at),
            "timeline": per_second, "slowest_second": bench_timeline.slowest(per_second)}


def unanswered(sent_at: dict[str, float], received: dict[str, float]) -> int:
    """How many of the measured probes have no alert yet (``received`` also holds the readiness
    probe's alert, so its size is no count of them).

    >>> unanswered({"p1": 0.0, "p2": 0.0}, {"ready": 0.0, "p1": 0.1})
    1
    >>> unanswered({"p1": 0.0}, {"ready": 0.0, "p1": 0.1})
    0
    """
    return sum(1 for alert_id in sent_at if alert_id not in received)


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
