"""Cyclic garbage collector settings for the service loop.

CPython runs a young collection every 700 container allocations and, as the detectors' state grows,
full collections that traverse every live object. The loop allocates a dozen containers per event
(validated dicts, the event, findings) that reference counting frees, and creates no reference
cycles (0 objects collected over 50k events of ``python -m stream.bench.loop``), so that traversal
finds nothing: with the default thresholds it cost about 10 us per event (281k simulated events:
8 full collections, 2.6-3.2 s in all, against 0.4 s with the settings below), a sixth of the
pipeline's budget. The collector stays on, for the cycles other code may make; it just runs less
often and no longer walks the start-up objects (modules, schemas, clients), which are never garbage.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

#: Container allocations between young collections (CPython's default is 700): one every few
#: thousand events, each over at most this many young objects (well under a millisecond).
GEN0_THRESHOLD = 50_000

# The settings are process-wide; services sharing a process (tests run several in threads) share
# them: the first to enter sets them, the last to leave restores what was there before.
_lock = threading.Lock()
_active = 0
_previous: tuple[int, int, int] = (0, 0, 0)


@contextlib.contextmanager
def loop_gc(gen0_threshold: int = GEN0_THRESHOLD) -> Iterator[None]:
    """Collect less often inside the block; the previous thresholds come back when the last block exits.

    >>> before = gc.get_threshold()
    >>> with loop_gc(10_000):
    ...     gc.get_threshold()[0]
    10000
    >>> gc.get_threshold() == before
    True
    """
    global _active, _previous
    with _lock:
        if not _active:
            _previous = gc.get_threshold()
            gc.freeze()  # what is alive now lives as long as the process: stop traversing it
            gc.set_threshold(gen0_threshold, _previous[1], _previous[2])
        _active += 1
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if not _active:
                gc.set_threshold(*_previous)
                gc.unfreeze()


_paused = 0
_was_enabled = True


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """No cyclic collection inside the block (for pickling and unpickling a snapshot); the collector's
    previous state comes back when the last block exits.

    Unpickling a partition's state allocates over a million containers, none of them garbage, and
    the collections they trigger traverse them again and again: 39% of a restore's instructions even
    under :func:`loop_gc` (callgrind, 3k principals: 259k against 158k instructions per principal).

    >>> with paused_gc():
    ...     gc.isenabled()
    False
    >>> gc.isenabled()
    True
    """
    global _paused, _was_enabled
    with _lock:
        if not _paused:
            _was_enabled = gc.isenabled()
            gc.disable()
        _paused += 1
    try:
        yield
    finally:
        with _lock:
            _paused -= 1
            if not _paused and _was_enabled:
                gc.enable()


class HeldGc:
    """:func:`paused_gc` held across polls: from a checkpoint's cut until it is durable.

    While a checkpoint is written, every principal record sent stays referenced (the producer's
    batches and futures) until the broker acknowledges it, so young collections find tens of
    thousands of survivors each time and older ones walk them again: at 50k principals, 59 young
    collections of 22 ms on average and 4 older ones of 113 ms, the loop's worst polls. Paused for
    the checkpoint's few seconds, then what survived is frozen (it is the engines' state and lives
    on; reference counting still frees it), so the collections after it do not walk it either.

    >>> held = HeldGc()
    >>> held.hold(); held.hold(); gc.isenabled()
    False
    >>> held.release(); gc.isenabled(), gc.get_freeze_count() > 0
    (True, True)
    >>> gc.unfreeze()
    """

    def __init__(self) -> None:
        self._stack: contextlib.ExitStack | None = None

    def hold(self) -> None:
        if self._stack is None:
            self._stack = contextlib.ExitStack()
            self._stack.enter_context(paused_gc())

    def release(self) -> None:
        if self._stack is not None:
            gc.freeze()  # first: it also zeroes the allocation count, so enabling collects nothing at once
            self._stack.close()
            self._stack = None
