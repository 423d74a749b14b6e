"""Second by second over the bench's latency window: the probes' latency, the service's CPU and the
rest of the machine's, to tell which of them a slow stretch came from.

Over the whole window, the service's share and the machine's (:mod:`stream.bench.cpustat`) cannot tell a
second in which the broker or the load generator took a whole CPU from a second in which the service
fell behind on its own: both average out over twenty seconds. :class:`Timeline` reads the same two
counters every :data:`SAMPLE_S` in a thread of the latency process (two small ``/proc`` reads a
second), and :func:`seconds` lines them up with the probes sent in each interval.
"""

from __future__ import annotations

import math
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from stream.bench import cpustat

#: Seconds between readings.
SAMPLE_S = 1.0


class Sample(NamedTuple):
    at: float  # wall clock (time.time(), as the probes' send times)
    machine: cpustat.CpuTimes | None
    service_s: float | None  # the service process's CPU seconds so far


class Timeline(threading.Thread):
    """Reads the machine's and the service's CPU counters every ``every_s`` until :meth:`finish`."""

    def __init__(self, service_pid: int, every_s: float = SAMPLE_S,
                 read_machine: Callable[[], cpustat.CpuTimes | None] = cpustat.read,
                 read_service: Callable[[int], float | None] = cpustat.process_seconds,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(name="privwatch-bench-timeline", daemon=True)
        self.service_pid, self.every_s = service_pid, every_s
        self.read_machine, self.read_service, self.clock = read_machine, read_service, clock
        self.samples: list[Sample] = []
        self._stop_reading = threading.Event()

    def sample(self) -> Sample:
        return Sample(self.clock(), self.read_machine(), self.read_service(self.service_pid))

    def run(self) -> None:
        while not self._stop_reading.wait(self.every_s):
            self.samples.append(self.sample())

    def begin(self) -> Sample:
        """The first reading, then one every ``every_s`` in the background. Returns the first."""
        self.samples.append(self.sample())
        self.start()
        return self.samples[0]

    def finish(self) -> Sample:
        """Stop reading, and take a last reading now. Returns it.

        When the background's last reading is under half an interval old, the last reading replaces
        it: over a few milliseconds the counters, in clock ticks of 10 ms, say nothing (the machine's
        may not move at all), so the last interval is folded into the one before.
        """
        self._stop_reading.set()
        self.join(timeout=5)
        last = self.sample()
        if len(self.samples) > 1 and last.at - self.samples[-1].at < self.every_s / 2:
            self.samples.pop()
        self.samples.append(last)
        return last


def seconds(samples: list[Sample], sent_at: dict[str, float], received: dict[str, float],
            cpus: int | None = None) -> list[dict[str, Any]]:
    """One entry per interval between readings: its start in seconds from the first reading, the
    service's share of a core, the CPUs busy in the whole machine and in the rest of it, and the
    slowest probe sent in the interval (None when none got its alert).

    >>> m = [cpustat.CpuTimes(1000, 800, 0), cpustat.CpuTimes(1200, 850, 0), cpustat.CpuTimes(1400, 980, 0)]
    >>> s = [Sample(10.0, m[0], 5.0), Sample(11.0, m[1], 5.7), Sample(12.0, m[2], 6.5)]
    >>> for row in seconds(s, {"p1": 10.2, "p2": 11.5}, {"p1": 10.25, "p2": 11.9}, cpus=2):
    ...     print(row)
    {'t': 0.0, 'service': 0.7, 'machine': 1.5, 'others': 0.8, 'probe_max_ms': 50.0}
    {'t': 1.0, 'service': 0.8, 'machine': 0.7, 'others': -0.1, 'probe_max_ms': 400.0}
    """
    out = []
    for a, b in zip(samples, samples[1:], strict=False):
        service = cpustat.share(a.service_s, b.service_s, b.at - a.at)
        machine = cpustat.busy_between(a.machine, b.machine, cpus).get("cpus_busy")
        # (clock ticks are coarse: over one second the rest of the machine can come out a little below 0)
        others = None if service is None or machine is None else round(machine - service, 2)
        slowest = [(received[k] - t) * 1000.0 for k, t in sent_at.items() if a.at <= t < b.at and k in received]
        out.append({"t": round(a.at - samples[0].at, 1), "service": service, "machine": machine, "others": others,
                    "probe_max_ms": round(max(slowest), 1) if slowest else None})
    return out


def slowest(timeline: list[dict[str, Any]]) -> dict[str, Any]:
    """The interval with the slowest probe, with the median of every interval's CPU figures to
    compare it with; ``{}`` when no probe got its alert.

    >>> tl = [{"t": 0.0, "service": 0.7, "machine": 1.2, "others": 0.5, "probe_max_ms": 40.0},
    ...       {"t": 1.0, "service": 0.6, "machine": 1.9, "others": 1.3, "probe_max_ms": 380.0},
    ...       {"t": 2.0, "service": 0.8, "machine": 1.3, "others": 0.5, "probe_max_ms": 45.0}]
    >>> worst = slowest(tl)
    >>> worst["t"], worst["probe_max_ms"], worst["others"], worst["median"]
    (1.0, 380.0, 1.3, {'service': 0.7, 'machine': 1.3, 'others': 0.5})
    """
    timed = [row for row in timeline if row["probe_max_ms"] is not None]
    if not timed:
        return {}
    worst = max(timed, key=lambda row: row["probe_max_ms"])
    median = {}
    for key in ("service", "machine", "others"):
        values = [row[key] for row in timeline if row[key] is not None]
        median[key] = round(statistics.median(values), 2) if values else None
    return {**worst, "median": median}


def mark_snapshots(timeline: list[dict[str, Any]], runs: list[tuple[float, float | None, float | None]],
                   start: float) -> list[dict[str, Any]]:
    """Note in each interval whether a background snapshot's child was running then (``snapshot``),
    from ``runs``: each child's start and end, wall clock, and its CPU seconds (None: not collected,
    or cancelled). Returns those runs that overlap the window, in seconds from its ``start``. (The
    end is when the loop reaped the child, at its next commit: the child may have exited before.)
    :func:`slowest` of the marked timeline carries the mark of its second.

    >>> tl = [{"t": 0.0, "probe_max_ms": 40.0}, {"t": 1.0, "probe_max_ms": 380.0}, {"t": 2.0, "probe_max_ms": 45.0}]
    >>> mark_snapshots(tl, [(90.0, 91.0, 0.05), (101.5, 102.4, 0.0612)], start=100.0)
    [{'from_s': 1.5, 'to_s': 2.4, 'child_cpu_s': 0.061}]
    >>> [row["snapshot"] for row in tl]
    [False, True, True]
    >>> mark_snapshots([], [(99.0, None, None)], start=100.0)  # no interval measured; still running
    [{'from_s': -1.0, 'to_s': None, 'child_cpu_s': None}]
    """
    ends = [row["t"] for row in timeline[1:]] + [math.inf] * bool(timeline)
    spans = [(a - start, math.inf if b is None else b - start) for a, b, _ in runs]
    for row, end in zip(timeline, ends, strict=True):
        row["snapshot"] = any(a < end and b > row["t"] for a, b in spans)
    last = timeline[-1]["t"] + 1.0 if timeline else 0.0
    return [{"from_s": round(a, 2), "to_s": None if b == math.inf else round(b, 2),
             "child_cpu_s": None if cpu is None else round(cpu, 3)}
            for (a, b), (_, _, cpu) in zip(spans, runs, strict=True) if b > 0.0 and a < last]
