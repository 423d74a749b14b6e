"""(a) and (a') of ``privwatch bench``: a bare kafka-python consumer that only decodes JSON (orjson),
with CPython's and glibc's defaults (a), and with the service's collector and allocator settings (a').

Each run is in a spawned process of its own. In the bench's process it used
to share the heap with the pre-filled history (hundreds of thousands of dicts), and CPython's full
collections over it slowed it down by a third or more, which flattered the ratio. The bench reads
the topic three times with each, in rounds with (b0) and (b), and the fastest run of each counts
(:func:`fastest`): back-to-back runs vary by a third on a 2-core machine.
"""

from __future__ import annotations

import resource
import time
import uuid
from typing import Any

import orjson

from stream.kafka import clients
from stream.ops import heap
from stream.ops.gctune import loop_gc
from stream.settings import Settings

#: Runs of each variant ((a), (a'), (b0), (b)); the fastest counts.
RUNS = 3


class Rate:
    """Counts records from the end of the first non-empty batch (group join and first fetch excluded),
    with the process's CPU time over the same span (``cpu_busy``: its share of the wall time).

    Also the rate over the second half of the records alone: the first half of a simulated history is
    mostly its baseline weeks, when every principal, resource and context is new to the detectors, and
    a running service spends its life past that (its state restored from snapshots after a restart).
    """

    def __init__(self, target: int) -> None:
        self.target = target
        self.cpu_first = self.cpu_done = 0.0  # the process's CPU time (every thread) at t_first, t_done
        self.faults_first = self.faults_done = 0  # and its minor page faults
        self.t_first = 0.0
        self.n_first = 0
        self.t_half = 0.0
        self.n_half = 0
        self.t_done = 0.0

    def batch(self, total: int) -> bool:
        """Note that ``total`` records are done so far; True once the target is reached."""
        if total and not self.t_first:
            self.t_first, self.n_first, self.cpu_first = time.perf_counter(), total, time.process_time()
            self.faults_first = _minor_faults()
        if total >= self.target // 2 and not self.t_half:
            self.t_half, self.n_half = time.perf_counter(), total
        if total >= self.target and not self.t_done:
            self.t_done, self.cpu_done = time.perf_counter(), time.process_time()
            self.faults_done = _minor_faults()
        return bool(self.t_done)

    def result(self) -> dict[str, Any]:
        seconds = max(self.t_done - self.t_first, 1e-9)
        counted = self.target - self.n_first
        out = {"events_per_s": round(counted / seconds, 1), "seconds": round(seconds, 3), "counted": counted,
               # under 1: the process waited (for the broker, or for a CPU the machine gave to others)
               "cpu_busy": round((self.cpu_done - self.cpu_first) / seconds, 3),
               "cpu_us_per_event": round((self.cpu_done - self.cpu_first) / max(counted, 1) * 1e6, 2),
               # pages the kernel had to fault in (zeroed) for the process: memory handed back and taken again
               "page_faults_per_1k_events": round((self.faults_done - self.faults_first) / max(counted, 1) * 1000, 1)}
        if self.t_done > self.t_half > self.t_first:
            out["second_half_events_per_s"] = round((self.target - self.n_half) / (self.t_done - self.t_half), 1)
        return out


def _minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def fastest(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest of several runs of one variant, with every run's rate (in run order).

    >>> fastest([{"events_per_s": 2.0, "x": "a"}, {"events_per_s": 3.0, "x": "b"}])
    {'events_per_s': 3.0, 'x': 'b', 'runs_events_per_s': [2.0, 3.0]}
    """
    best = max(results, key=lambda r: r["events_per_s"])
    return {**best, "runs_events_per_s": [r["events_per_s"] for r in results]}


def tuned_bare_consumer(settings: Settings, n: int, timeout_s: float) -> dict[str, Any]:
    """(a') :func:`bare_consumer` in a process set up as the service sets up its own: the collector's
    thresholds (:func:`~stream.ops.gctune.loop_gc`) and the allocator's (:func:`~stream.ops.heap.keep_free_heap`).
    (a) is the issue's bare consumer, with CPython's and glibc's defaults; this is what the same
    consumer reads when given what the service gives itself, the stricter yardstick."""
    heap.keep_free_heap(settings.heap_keep_mb << 20)
    with loop_gc():
        return bare_consumer(settings, n, timeout_s)


def bare_consumer(settings: Settings, n: int, timeout_s: float) -> dict[str, Any]:
    """(a) kafka-python + orjson only, with the service's consumer settings and a fresh group."""
    consumer = clients.consumer(settings, group_id=f"pwbench-bare-{uuid.uuid4().hex[:8]}")
    consumer.subscribe([settings.access_topic, settings.permission_topic])
    rate, seen, loads = Rate(n), 0, orjson.loads
    deadline = time.monotonic() + timeout_s
    try:
        while not rate.batch(seen) and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=settings.poll_timeout_ms,
                                         max_records=settings.max_poll_records).values():
                for record in records:
                    loads(record.value)
                seen += len(records)
    finally:
        consumer.close(autocommit=False)
    if not rate.t_done:
        raise RuntimeError(f"bare consumer read only {seen} of {n} records in {timeout_s:.0f} s")
    return rate.result()
