"""State at scale: memory per principal, the loop's stall while a checkpoint writes every principal,
and a restore of all of them.

``python -m stream.bench.state [--principals N] [--events-per-principal K] [--bootstrap-servers HOST:PORT]``

1. **feed**: one engine learns ``K`` realistic events of each of ``N`` principals (varied departments,
   resources, countries, devices, actions) under the service's collector settings; the process's
   resident memory before and after, per principal.
2. **checkpoint under load**: every principal changed since the last checkpoint (the worst case). A
   checkpoint is cut and written as the service writes it (:class:`~stream.service.snapshots.Snapshots`:
   a slice within ``checkpoint_budget_ms`` after each poll, and a principal whose event comes first
   written just before it), while polls of ``--batch`` events keep coming (the service's
   ``checkpoint_poll_records``, what it polls at most while a checkpoint is being written); the loop time each poll
   spends on the checkpoint (p50, p99, max), the cut's own time, the records and bytes written, and
   how many polls it took.
3. **restore**: a fresh store restores the partition (every principal's record, then the shared state,
   signatures and digest checked), as a new owner does; its time, and whether every principal's event
   count is the original's.

The state topic is in memory (:class:`stream.testing.MemoryTopic`) unless ``--bootstrap-servers``
names a broker, where a fresh compacted topic is used (then deleted). Times are wall clock for the
stall (what the loop waits) and CPU time for the phases (less disturbed by a busy machine).
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

from kafka import TopicPartition
from prometheus_client import CollectorRegistry

from detectors.engine import Engine, EngineConfig
from detectors.events import Event
from detectors.registry import REGISTRY
from stream.alertmanager.correlate import Correlator
from stream.ops.gctune import loop_gc
from stream.ops.metrics import Metrics
from stream.service.checkpoint import Checkpoint
from stream.service.snapshots import Snapshots
from stream.state.partitions import Partitions
from stream.state.store import Anchor, StateStore
from stream.testing import MemoryTopic

T0 = 1_790_000_000.0  # event time origin (2026-09)
DEPARTMENTS = ("support", "sales", "finance", "engineering", "hr", "marketing", "legal", "ops")
ROLES = ("agent", "analyst", "manager", "engineer", "admin")
COUNTRIES = ("GB", "DE", "FR", "US", "NL", "IE", "ES", "PL")
RESOURCES = (
    ("customers.profile", "table", "restricted", ("pii.contact",)),
    ("customers.payment", "table", "restricted", ("pii.financial",)),
    ("orders.history", "table", "internal", ()),
    ("hr.salaries", "table", "restricted", ("pii.financial", "hr")),
    ("tickets.messages", "table", "confidential", ("pii.contact",)),
    ("marketing.segments", "dataset", "internal", ()),
    ("reports.quarterly", "file", "confidential", ()),
    ("crm.contacts", "api", "restricted", ("pii.contact",)),
)
ACTIONS = ("read", "read", "read", "query", "export", "update")
BENCH_KEY = b"statebench-key-0123456789abcdef"
INPUTS = ("access", "permission")


def events(n_principals: int, per_principal: int = 4, seed: int = 7, start_k: int = 0) -> Iterator[Event]:
    """``per_principal`` access events per principal over a few days, interleaved in time order
    (``start_k``: the rounds before are taken as done, for a later pass over the same principals)."""
    rnd = random.Random(seed)
    people = []
    for i in range(n_principals):
        dept = DEPARTMENTS[i % len(DEPARTMENTS)]
        people.append((f"u-{i:07d}", dept, ROLES[(i // 8) % len(ROLES)], COUNTRIES[rnd.randrange(3)],
                       rnd.sample(range(len(RESOURCES)), 3)))
    span = 3 * 86_400.0
    for k in range(start_k, start_k + per_principal):
        for i, (pid, dept, role, home, favourites) in enumerate(people):
            ts = T0 + k * span / per_principal + (i / max(n_principals, 1)) * span / per_principal
            rid, rkind, sens, cats = RESOURCES[favourites[rnd.randrange(3)] if rnd.random() < 0.9
                                               else rnd.randrange(len(RESOURCES))]
            action = ACTIONS[rnd.randrange(len(ACTIONS))]
            records = rnd.randint(1, 40) if action != "export" else rnd.randint(10, 500)
            yield Event(
                kind="access", event_id=f"{pid}-{k}", ts=ts, principal_id=pid, department=dept, role=role,
                action=action, resource_id=rid, resource_kind=rkind, sensitivity=sens, categories=cats,
                records=records, bytes=records * rnd.randint(200, 2000), subjects=records,
                subject_refs=tuple(f"s-{rnd.randrange(10**6):06x}" for _ in range(min(records, 3))),
                ip=f"10.{i % 250}.{k % 250}.{rnd.randrange(250)}",
                country=home if rnd.random() < 0.97 else COUNTRIES[rnd.randrange(len(COUNTRIES))],
                device_id=f"lt-{pid}" if rnd.random() < 0.95 else f"ph-{pid}", user_agent="Mozilla/5.0",
                purpose=f"ticket-{rnd.randrange(10**5)}",
            )


def rss_mb() -> float:
    """The process's resident memory now (MB)."""
    with open(f"/proc/{os.getpid()}/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


class _Timed:
    """Wraps the engine's capture hook (a principal written before its event): the loop time it takes."""

    def __init__(self, capture: Any) -> None:
        self.capture = capture
        self.seconds = 0.0
        self.cpu_s = 0.0

    def __call__(self, principal_id: str) -> None:
        started, cpu = time.perf_counter(), time.thread_time()
        self.capture(principal_id)
        self.seconds += time.perf_counter() - started
        self.cpu_s += time.thread_time() - cpu


def _topic(bootstrap: str | None) -> tuple[Any, Any, str, Any]:
    """(producer, reader factory, topic name, cleanup) for the state topic: in memory, or on a broker."""
    if bootstrap is None:
        topic = MemoryTopic(partitions=1)
        return topic, topic.reader, topic.name, lambda: None
    from kafka.admin import NewTopic

    from stream.kafka import clients
    from stream.settings import Settings

    settings = Settings(bootstrap_servers=bootstrap, metrics_port=0)
    name = f"pw-statebench-{uuid.uuid4().hex[:8]}"
    admin = clients.admin(settings)
    admin.create_topics([NewTopic(name, 1, 1, topic_configs={"cleanup.policy": "compact"})])
    producer = clients.producer(settings, linger_ms=20, batch_size=256 << 10)

    def reader() -> Any:
        return clients.consumer(settings, group_id=None, max_poll_records=20_000,
                                max_partition_fetch_bytes=8 << 20)

    def cleanup() -> None:
        producer.close(timeout=10)
        admin.delete_topics([name])
        admin.close()

    return producer, reader, name, cleanup


def run_state_benchmark(n_principals: int = 100_000, per_principal: int = 4, batch: int = 200,
                        budget_ms: int = 20, bootstrap: str | None = None) -> dict[str, Any]:
    """The three phases; returns their numbers (see the module's description)."""
    producer, make_reader, topic, cleanup = _topic(bootstrap)
    try:
        return _measure(n_principals, per_principal, batch, budget_ms, producer, make_reader, topic)
    finally:
        cleanup()


def _measure(n: int, per_principal: int, batch: int, budget_ms: int, producer: Any, make_reader: Any,
             topic: str) -> dict[str, Any]:
    config = EngineConfig(max_principals=max(n, 1))
    anchors: dict[int, Anchor] = {}
    store = StateStore(producer, make_reader, topic, "bench", BENCH_KEY, committed=anchors.get, partitions=1)
    partitions = Partitions(lambda: Engine(config))
    checkpoint = Checkpoint(covered_only=True)
    for name in INPUTS:
        checkpoint.resume(TopicPartition(name, 0), 0)
    metrics = Metrics(CollectorRegistry(), REGISTRY)
    snapshots = Snapshots(store, partitions, Correlator(), checkpoint, lambda **_: None, metrics, list(INPUTS),
                          interval_s=0.0, budget_s=budget_ms / 1000.0)
    before = rss_mb()
    engine = partitions.engines[0] = Engine(config)
    snapshots.track(0)
    started = time.process_time()
    with loop_gc():
        n_events = 0
        for event in events(n, per_principal):
            engine.process(event)
            n_events += 1
    feed_s = time.process_time() - started
    fed = rss_mb()
    out: dict[str, Any] = {
        "principals": engine.n_principals(), "events": n_events, "feed_cpu_s": round(feed_s, 1),
        "rss_before_mb": round(before, 1), "rss_after_mb": round(fed, 1),
        "state_bytes_per_principal": round((fed - before) * 2**20 / max(n, 1)),
        "process_bytes_per_principal": round(fed * 2**20 / max(n, 1)),
    }
    out.update(_checkpoint_under_load(snapshots, engine, store, anchors, n, per_principal, batch))
    n_principals = engine.n_principals()
    partitions.engines.clear()  # the original's memory goes before the restore: the peak is one engine, not two
    del engine, snapshots
    out.update(_restore(store, anchors, config, n_principals, make_reader, topic, producer, per_principal))
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)
    return out


def _checkpoint_under_load(snapshots: Snapshots, engine: Engine, store: StateStore, anchors: dict[int, Anchor],
                           n: int, per_principal: int, batch: int) -> dict[str, Any]:
    """Cut a checkpoint of every principal and write it a slice per poll while polls of ``batch`` new
    events come; the loop time each poll spends on it."""
    capture = _Timed(engine.capture)
    engine.capture = capture
    later = events(n, per_principal, seed=8, start_k=per_principal)
    stalls: list[float] = []
    stalls_cpu: list[float] = []  # the same in CPU time: what a busy machine's preemptions leave out
    polls = 0
    cpu = time.process_time()
    with loop_gc():
        started, thread = time.perf_counter(), time.thread_time()
        snapshots.persist(now=1.0)  # the cut, and the first slice
        stalls.append(time.perf_counter() - started)
        stalls_cpu.append(time.thread_time() - thread)
        cut_s = snapshots._loop_s
        cut = store.logs[0].cut
        generation = cut.generation if cut is not None else 0
        while snapshots.busy:
            capture.seconds = capture.cpu_s = 0.0
            for _ in range(batch):
                event = next(later, None)
                if event is not None:
                    engine.process(event)
            started, thread = time.perf_counter(), time.thread_time()
            snapshots.step()
            stalls.append(time.perf_counter() - started + capture.seconds)
            stalls_cpu.append(time.thread_time() - thread + capture.cpu_s)
            polls += 1
    cpu = time.process_time() - cpu
    anchors[0] = Anchor(generation, 1, 0)
    store.committed_at(0, generation)
    written = int(snapshots.metrics.registry.get_sample_value("privwatch_state_records_total") or 0)
    return {
        "checkpoint_records": written, "checkpoint_polls": polls, "checkpoint_cpu_s": round(cpu, 1),
        "cut_ms": round(cut_s * 1000, 1), "stall_p50_ms": round(_percentile(stalls, 0.5) * 1000, 1),
        "stall_p99_ms": round(_percentile(stalls, 0.99) * 1000, 1),
        "stall_max_ms": round(max(stalls) * 1000, 1),
        "stall_cpu_p50_ms": round(_percentile(stalls_cpu, 0.5) * 1000, 1),
        "stall_cpu_p99_ms": round(_percentile(stalls_cpu, 0.99) * 1000, 1),
        "stall_cpu_max_ms": round(max(stalls_cpu) * 1000, 1),
        "shared_bytes": int(snapshots.metrics.registry.get_sample_value("privwatch_snapshot_bytes") or 0),
    }


def _restore(store: StateStore, anchors: dict[int, Anchor], config: EngineConfig, n_principals: int,
             make_reader: Any, topic: str, producer: Any, per_principal: int) -> dict[str, Any]:
    fresh = StateStore(producer, make_reader, topic, "bench", BENCH_KEY, committed=anchors.get, partitions=1)
    started, cpu = time.perf_counter(), time.process_time()
    restored = fresh.restore(0, lambda: Engine(config))
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    assert restored is not None, "the bench's own checkpoint was refused"
    # every principal had had exactly the fed events when the checkpoint was cut
    fed = {profile.n_events for profile in restored.engine.profiles.values()}
    same = restored.engine.n_principals() == n_principals and fed == {per_principal}
    return {"restore_s": round(seconds, 1), "restore_cpu_s": round(cpu, 1), "restored_principals":
            restored.engine.n_principals(), "restored_ok": same}


def state_bytes_per_principal(principals: int) -> dict[str, Any]:
    """:func:`run_state_benchmark` as ``privwatch bench`` runs it (in memory)."""
    return {"source": "stream.bench.state", **run_state_benchmark(principals)}


LABELS = {
    "principals": "principals", "events": "events fed", "feed_cpu_s": "feed (CPU s)",
    "rss_before_mb": "resident memory before (MB)", "rss_after_mb": "resident memory after (MB)",
    "state_bytes_per_principal": "state: resident bytes per principal",
    "process_bytes_per_principal": "whole process: resident bytes per principal",
    "checkpoint_records": "checkpoint: principal records", "checkpoint_polls": "checkpoint: polls to write it",
    "checkpoint_cpu_s": "checkpoint: CPU s (polls' events included)", "cut_ms": "checkpoint: the cut (ms)",
    "stall_p50_ms": "checkpoint: loop time per poll p50 (ms)",
    "stall_p99_ms": "checkpoint: loop time per poll p99 (ms)",
    "stall_max_ms": "checkpoint: loop time per poll max (ms)",
    "stall_cpu_p50_ms": "checkpoint: loop CPU time per poll p50 (ms)",
    "stall_cpu_p99_ms": "checkpoint: loop CPU time per poll p99 (ms)",
    "stall_cpu_max_ms": "checkpoint: loop CPU time per poll max (ms)",
    "shared_bytes": "checkpoint: shared state (bytes)",
    "restore_s": "restore: all principals (s)", "restore_cpu_s": "restore: CPU s",
    "restored_principals": "restore: principals", "restored_ok": "restored state identical",
    "peak_rss_mb": "peak resident memory (MB)",
}


def format_table(result: dict[str, Any]) -> str:
    width = max(map(len, LABELS.values()))
    return "\n".join(f"{LABELS[k]:<{width}}  {v}" for k, v in result.items() if k in LABELS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stream.bench.state", description=__doc__.splitlines()[0])
    parser.add_argument("--principals", type=int, default=100_000)
    parser.add_argument("--events-per-principal", type=int, default=4)
    parser.add_argument("--batch", type=int, default=200, help="events per poll while the checkpoint is written "
                                                               "(checkpoint_poll_records)")
    parser.add_argument("--budget-ms", type=int, default=20, help="checkpoint_budget_ms")
    parser.add_argument("--bootstrap-servers", default=None, help="write to and restore from this broker")
    args = parser.parse_args(argv)
    print(format_table(run_state_benchmark(args.principals, args.events_per_principal, args.batch, args.budget_ms,
                                           args.bootstrap_servers)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
