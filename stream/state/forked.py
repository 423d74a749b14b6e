"""Snapshot payloads encoded by a forked child, so that the poll loop does not stall while it pickles.

Pickling a partition's state costs about 0.1 ms per principal: 3.8 s for 33k principals
(``python -m stream.bench.state --principals 33000``). Done in the loop, every periodic snapshot
stopped consumption and alerting for that long. ``fork()`` instead gives a child a copy-on-write image
of the state as it is at that instant, the idea behind Redis's background saves. The child encodes the
payloads into an anonymous in-memory file and exits; the loop goes on, and collects the file once the
child is done.

The service has other threads when it forks (kafka-python's, the metrics server's). The child
touches nothing they own: it pickles, compresses and writes, then leaves with ``os._exit``; CPython
resets its own locks in a forked child. (Python 3.12 warns about ``fork()`` in a process with threads
for the general case, where the child goes on to use them.)

The price is memory. Pickling updates the reference counts of the objects it visits, so the pages
holding them are copied: up to the engines' size again, for as long as the child runs. The child
offers itself to the kernel's OOM killer first (``oom_score_adj``), so a container at its memory limit
loses the child, not the service. The caller then snapshots in the loop. The child also runs at a lower
CPU priority (:data:`CHILD_NICENESS`), so that it takes idle CPU rather than the loop's.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import struct
import tempfile
import time
from collections.abc import Mapping, Sequence
from typing import Any, BinaryIO

from detectors.engine import Engine
from stream.errors import SnapshotError
from stream.state import snapshot

_HEADER = struct.Struct(">IQ")  # partition, payload length
#: The child's scheduling niceness above the service's. It is background work: on a busy machine (or
#: within a pod's CPU quota) it should take what the loop leaves idle, not half of a core from it (in
#: one bench run, a child at the service's own priority coincided with alert latency rising from about
#: 60 to 560 ms). At +10 the kernel still gives it about a tenth of a core the loop wants, so it finishes.
CHILD_NICENESS = 10


def _child(fd: int, states: Mapping[int, tuple[Engine, Sequence[Any]]]) -> None:
    """Encode every partition's payload into ``fd``, then exit: never returns, never runs the parent's
    cleanup (no ``atexit``, no flushing of inherited buffers, no Kafka clients touched)."""
    status = 1
    try:
        gc.disable()  # a collection would visit, and so copy, every tracked object for nothing
        with contextlib.suppress(OSError), open("/proc/self/oom_score_adj", "w") as fh:  # not on every OS
            fh.write("1000")
        os.nice(CHILD_NICENESS)
        with open(fd, "wb", closefd=False) as out:
            for p in sorted(states):
                engine, incidents = states[p]
                payload = snapshot.encode_payload(engine, incidents)
                out.write(_HEADER.pack(p, len(payload)))
                out.write(payload)
        status = 0
    finally:
        os._exit(status)


def _anonymous_file() -> BinaryIO:
    """A file in memory with no name (``memfd_create``), so that no filesystem limit applies (the
    Kubernetes manifest's ``/tmp`` is a small ``emptyDir``); an unlinked temporary file elsewhere."""
    if hasattr(os, "memfd_create"):
        return os.fdopen(os.memfd_create("privwatch-snapshot"), "w+b")
    return tempfile.TemporaryFile(prefix="privwatch-snapshot-")


class Forked:
    """One child encoding the payloads of ``states`` (partition -> (engine, open incidents)) as they
    are when the object is made. Raises ``OSError`` when the fork fails (out of memory, say)."""

    def __init__(self, states: Mapping[int, tuple[Engine, Sequence[Any]]], offsets: dict[int, dict[str, int]],
                 taken_at: float) -> None:
        self.partitions = sorted(states)
        self.offsets = offsets
        self.taken_at = taken_at
        self.started = time.monotonic()
        #: from the fork until the child was reaped (the loop reaps it at its next commit, so this is
        #: an upper bound of the child's life)
        self.seconds = 0.0
        #: the child's own CPU time (user and system), from the kernel's accounting when it was reaped
        self.child_cpu_s = 0.0
        #: poll-loop time spent on this snapshot so far (the caller's to keep: the fork, then the write)
        self.blocked_s = 0.0
        self.child_max_rss_mb = 0.0
        self._status: int | None = None
        # kept open until payloads() or cancel(): the child writes to it, the parent reads it back
        self._file = _anonymous_file()
        try:
            if not hasattr(os, "fork"):
                raise OSError("no fork() on this platform")
            self.pid = os.fork()
        except OSError:
            self._file.close()
            raise
        if self.pid == 0:  # pragma: no cover - the child's coverage is not collected
            _child(self._file.fileno(), states)

    def done(self) -> bool:
        """True once the child has exited (it is reaped here)."""
        if self._status is None:
            pid, status, usage = os.wait4(self.pid, os.WNOHANG)
            if pid == 0:
                return False
            self._status = status
            self.seconds = time.monotonic() - self.started
            self.child_max_rss_mb = usage.ru_maxrss / 1024.0  # KiB on Linux
            self.child_cpu_s = usage.ru_utime + usage.ru_stime
        return True

    def payloads(self) -> dict[int, bytes]:
        """The encoded payload of each partition, once :meth:`done`; raises :class:`SnapshotError` if the
        child failed or was killed."""
        assert self._status is not None, "payloads() before done()"
        try:
            if not os.WIFEXITED(self._status) or os.WEXITSTATUS(self._status) != 0:
                how = (f"killed by signal {os.WTERMSIG(self._status)}" if os.WIFSIGNALED(self._status)
                       else f"exit status {os.WEXITSTATUS(self._status)}")
                raise SnapshotError(f"snapshot child failed ({how})")
            self._file.seek(0)
            data = self._file.read()
        finally:
            self._file.close()
        out: dict[int, bytes] = {}
        at = 0
        while at + _HEADER.size <= len(data):
            p, n = _HEADER.unpack_from(data, at)
            at += _HEADER.size
            out[p] = data[at:at + n]
            at += n
        if sorted(out) != self.partitions or at != len(data):
            raise SnapshotError("snapshot child wrote an incomplete result")
        return out

    def cancel(self) -> None:
        """Kill the child if it still runs, reap it and drop its output."""
        if self._status is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            _, self._status = os.waitpid(self.pid, 0)
        self._file.close()

