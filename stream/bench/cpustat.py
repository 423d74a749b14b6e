"""CPU use between two moments, of the whole machine (``/proc/stat``) and of one process
(``/proc/<pid>/stat``), on Linux: for the bench, to tell a service that was slow from one that was
starved (the broker, the load generator and the service share the machine).
"""

from __future__ import annotations

import os
from typing import NamedTuple


class CpuTimes(NamedTuple):
    """Clock ticks summed over all CPUs since boot."""

    total: int
    idle: int  # idle and waiting for I/O
    steal: int  # time the hypervisor gave this VM's CPUs to others


def parse(line: str) -> CpuTimes:
    """The first line of ``/proc/stat`` (user nice system idle iowait irq softirq steal guest guest_nice;
    guest time is already counted in user and nice).

    >>> parse("cpu  100 5 50 800 20 0 5 20 0 0")
    CpuTimes(total=1000, idle=820, steal=20)
    """
    ticks = [int(x) for x in line.split()[1:9]]
    ticks += [0] * (8 - len(ticks))
    return CpuTimes(sum(ticks), ticks[3] + ticks[4], ticks[7])


def read() -> CpuTimes | None:
    """Now, or None where there is no ``/proc/stat``."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            return parse(fh.readline())
    except OSError:
        return None


def process_seconds(pid: int) -> float | None:
    """CPU seconds a process has used so far, every thread, user and system (as its own
    ``time.process_time()``); None where there is no ``/proc``."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return process_ticks(fh.read()) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return None


def process_ticks(stat: str) -> int:
    """utime + stime of a ``/proc/<pid>/stat`` line (fields 14 and 15, counted after the command
    name, which may hold spaces and parentheses).

    >>> process_ticks("42 (python (x) y) S 1 42 42 0 -1 4194304 100 0 0 0 250 50 0 0 20 0 3")
    300
    """
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def share(before: float | None, after: float | None, seconds: float) -> float | None:
    """CPU seconds between two readings over the wall seconds between them.

    >>> share(1.0, 13.0, 20.0), share(None, 2.0, 1.0)
    (0.6, None)
    """
    if before is None or after is None or seconds <= 0:
        return None
    return round((after - before) / seconds, 3)


def busy_between(before: CpuTimes | None, after: CpuTimes | None, cpus: int | None = None) -> dict[str, float]:
    """CPUs busy on average between two readings (stolen time included: the CPU was wanted) and CPUs
    stolen by the hypervisor; ``{}`` without both readings.

    >>> busy_between(CpuTimes(1000, 820, 20), CpuTimes(1200, 860, 40), cpus=2)
    {'cpus': 2, 'cpus_busy': 1.6, 'cpus_stolen': 0.2}
    """
    if before is None or after is None or after.total <= before.total:
        return {}
    cpus = cpus or os.cpu_count() or 1
    span = (after.total - before.total) / cpus
    return {"cpus": cpus, "cpus_busy": round((after.total - before.total - (after.idle - before.idle)) / span, 2),
            "cpus_stolen": round((after.steal - before.steal) / span, 2)}
