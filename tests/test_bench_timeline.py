"""The latency window second by second (stream.bench.timeline), with fake counters: no broker, no timing."""

from __future__ import annotations

import itertools
import time

from stream.bench import cpustat
from stream.bench.timeline import Sample, Timeline, seconds, slowest


def test_timeline_reads_both_counters_from_begin_to_finish() -> None:
    ticks = itertools.count()
    machine_reads = (cpustat.CpuTimes(1000 + 200 * n, 800 + 100 * n, 0) for n in ticks)
    service_reads = itertools.count(start=5.0, step=0.5)
    pids: list[int] = []

    def read_service(pid: int) -> float:
        pids.append(pid)
        return next(service_reads)

    timeline = Timeline(4242, every_s=0.01, read_machine=lambda: next(machine_reads), read_service=read_service)
    first = timeline.begin()
    time.sleep(0.1)
    last = timeline.finish()
    samples = timeline.samples
    assert samples[0] is first and samples[-1] is last and len(samples) >= 3
    assert not timeline.is_alive() and set(pids) == {4242}
    assert [s.at for s in samples] == sorted(s.at for s in samples)
    # each reading is the next value of the counters, but for a background one the last may have replaced
    assert [s.service_s for s in samples[:-1]] == [5.0 + 0.5 * i for i in range(len(samples) - 1)]
    assert samples[-1].service_s in (5.0 + 0.5 * (len(samples) - 1), 5.0 + 0.5 * len(samples))
    rows = seconds(samples, {}, {}, cpus=2)
    assert len(rows) == len(samples) - 1 and rows[0]["t"] == 0.0
    assert all(row["machine"] == 1.0 and row["probe_max_ms"] is None for row in rows)
    assert slowest(rows) == {}  # no probe in any interval


def test_a_last_reading_close_after_the_background_one_replaces_it() -> None:
    """Over a few milliseconds the clock-tick counters say nothing: that interval is folded into the one before."""
    for finished_at, expected in ((2.3, [0.0, 1.0, 2.3]), (2.6, [0.0, 1.0, 2.0, 2.6])):
        times = iter([0.0, 1.0, 2.0, finished_at])
        timeline = Timeline(1, every_s=1.0, read_machine=lambda: None, read_service=lambda pid: None,
                            clock=lambda: next(times))  # noqa: B023 - used within the iteration
        timeline.begin()  # its background thread waits a real second: finish() stops it before its first reading
        timeline.samples += [timeline.sample(), timeline.sample()]  # as the background would have read them
        assert timeline.finish().at == finished_at
        assert [s.at for s in timeline.samples] == expected


def test_each_probe_counts_in_the_interval_it_was_sent_in() -> None:
    m = cpustat.CpuTimes(0, 0, 0)
    samples = [Sample(100.0, m, 1.0), Sample(101.0, m, 1.5), Sample(102.0, m, 2.5), Sample(103.0, None, None)]
    sent = {"a": 100.0, "b": 100.9, "c": 101.0, "d": 101.5, "lost": 102.2, "late": 103.0}
    received = {"a": 100.05, "b": 101.1, "c": 101.01, "d": 101.8, "late": 103.1}
    rows = seconds(samples, sent, received, cpus=2)
    assert [row["probe_max_ms"] for row in rows] == [200.0, 300.0, None]  # "late" was sent after the last reading
    assert [row["service"] for row in rows] == [0.5, 1.0, None]  # the last reading has no service counter
    assert [row["others"] for row in rows] == [None, None, None]  # the machine's counters did not move
    worst = slowest(rows)
    assert worst["t"] == 1.0 and worst["probe_max_ms"] == 300.0 and worst["median"]["service"] == 0.75
