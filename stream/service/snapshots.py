"""When the owned partitions' state is written to the state topic, and what that lets be committed.

A partition's state is its engine and its principals' open correlated incidents
(:mod:`stream.alertmanager.correlate`). :class:`Snapshots` knows which partitions changed since
their last snapshot, when the next periodic one is due, and the forked child encoding one in the
background (:mod:`stream.state.forked`, copy-on-write like Redis's background saves). A snapshot
records the input offsets its state reflects; once it is acknowledged, those offsets are covered
(:meth:`stream.service.checkpoint.Checkpoint.cover`), and only covered offsets are committed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from kafka import TopicPartition
from kafka.errors import KafkaError

from stream.alertmanager.correlate import Correlator
from stream.errors import OutputsUnsent, SnapshotError
from stream.ops.gctune import paused_gc
from stream.ops.metrics import Metrics
from stream.service.checkpoint import Checkpoint
from stream.service.hooks import Hooks
from stream.state import snapshot
from stream.state.forked import Forked
from stream.state.partitions import Partitions
from stream.state.store import StateStore

log = logging.getLogger(__name__)

#: a snapshot child still running after this long is killed, and the next snapshot runs in the loop
FORK_TIMEOUT_S = 600.0


class Snapshots:
    """Snapshots of the owned partitions: periodic (in a forked child unless ``in_background`` is
    off), and in the loop on shutdown and for revoked partitions."""

    def __init__(self, store: StateStore, partitions: Partitions, correlator: Correlator, checkpoint: Checkpoint,
                 flush: Callable[..., Any], metrics: Metrics, inputs: list[str], interval_s: float,
                 in_background: bool = True, hooks: Hooks | None = None) -> None:
        self.store = store
        self.partitions = partitions
        self.correlator = correlator
        self.checkpoint = checkpoint
        self.flush = flush
        self.metrics = metrics
        self.inputs = inputs
        self.interval_s = interval_s
        self.in_background = in_background
        self.hooks = hooks or Hooks()
        #: owned partitions changed since their last snapshot
        self.dirty: set[int] = set()
        #: when each partition's last durable snapshot was taken (or its state restored)
        self.times: dict[int, float] = {}
        #: a periodic snapshot being encoded by a forked child, if any
        self.forked: Forked | None = None
        #: the last forked child failed (killed for memory, say): take the next snapshot in the loop
        self._fork_failed = False
        self._next = 0.0

    def persist(self, now: float, force: bool = False) -> None:
        """Write a finished background snapshot, then start the next one when due (``force``: now, in
        the loop, as on shutdown)."""
        self.collect_forked()
        if force or (now >= self._next and self.forked is None):
            self._next = now + self.interval_s
            if force or not self.in_background:
                self.snapshot_all(now)
            else:
                self.snapshot_in_background(now)

    def oldest(self) -> float | None:
        """When the oldest of the owned partitions' snapshots was taken (None: none yet)."""
        return min(self.times.values()) if self.times else None

    def forget(self, partitions: set[int]) -> None:
        """Partitions no longer owned: nothing of theirs is due."""
        self.dirty -= partitions
        for p in partitions:
            self.times.pop(p, None)

    def _due(self, only: set[int] | None) -> set[int]:
        """Owned, restored partitions that changed since their last snapshot (those of ``only``)."""
        due = self.dirty & self.partitions.ready()
        return due if only is None else due & only

    def _take(self, due: set[int]) -> dict[int, dict[str, int]]:
        """Start a snapshot of ``due``: flush the alerts and dead letters of the handled records first,
        and return the offsets each partition's state reflects. Events handled from now on mark their
        partition changed again; a failed snapshot marks it changed too (see :meth:`_write`)."""
        self.flush()
        self.dirty -= due
        return {p: {topic: self.checkpoint.next_offset(TopicPartition(topic, p)) for topic in self.inputs}
                for p in due}

    def snapshot_all(self, now: float, only: set[int] | None = None) -> None:
        """Snapshot, in the loop, every owned, restored partition that changed (or those of ``only``),
        with the offsets it reflects; once flushed and acknowledged, mark those offsets safe to commit.
        A background snapshot still running is dropped: this one is newer."""
        self.cancel_forked()
        due = self._due(only)
        if not due:
            return
        started = time.perf_counter()
        self._encode_in_loop(self._take(due), now, started)

    def _encode_in_loop(self, offsets: dict[int, dict[str, int]], now: float, started: float) -> None:
        """Encode and write the partitions of ``offsets`` (already taken), then observe the loop's time."""
        payloads = {}
        with paused_gc():  # not inside encode_payload: a forked child must not take gctune's lock
            for p in sorted(offsets):
                try:
                    payloads[p] = snapshot.encode_payload(self.partitions.engines[p], self.correlator.export(p))
                except Exception as exc:  # a failed snapshot must not stop processing; the next one retries
                    self._failed(p, "encode", exc)
        self._write(payloads, offsets, now)
        self.metrics.snapshot_blocked.labels("loop").observe(time.perf_counter() - started)

    def snapshot_in_background(self, now: float) -> None:
        """Start a periodic snapshot of the changed partitions in a forked child, and go on; the next
        :meth:`collect_forked` after the child is done writes it. In the loop instead when the last
        child failed or the fork does."""
        if self.forked is not None:
            return
        if self._fork_failed:
            self._fork_failed = False
            self.snapshot_all(now)
            return
        due = self._due(None)
        if not due:
            return
        started = time.perf_counter()
        states = {p: (self.partitions.engines[p], self.correlator.export(p)) for p in due}
        offsets = self._take(due)
        try:
            self.forked = Forked(states, offsets, now)
            self.forked.blocked_s = time.perf_counter() - started
        except OSError as exc:  # offsets are taken and outputs flushed: encode the same state here
            log.warning("snapshot fork failed error=%s; snapshotting in the loop", type(exc).__name__)
            self._encode_in_loop(offsets, now, started)
            return
        self.hooks.snapshot_forked()

    def collect_forked(self) -> None:
        """Write the background snapshot if its child is done (or give up on a child that hangs)."""
        forked = self.forked
        if forked is None:
            return
        if not forked.done():
            if time.monotonic() - forked.started < FORK_TIMEOUT_S:
                return
            forked.cancel()
        self.forked = None
        try:
            payloads = forked.payloads()
        except SnapshotError as exc:
            self._fork_failed = True
            self.hooks.snapshot_ended(None)
            for p in forked.partitions:
                self._failed(p, "background", exc)
            return
        self.hooks.snapshot_ended(forked.child_cpu_s)
        log.info("background snapshot encoded partitions=%d seconds=%.2f child_cpu_s=%.3f child_peak_rss_mb=%.0f",
                 len(payloads), forked.seconds, forked.child_cpu_s, forked.child_max_rss_mb)
        started = time.perf_counter()
        self._write(payloads, forked.offsets, forked.taken_at)
        self.metrics.snapshot_blocked.labels("fork").observe(forked.blocked_s + time.perf_counter() - started)

    def cancel_forked(self) -> None:
        """Drop a background snapshot still running (its partitions count as changed again)."""
        if self.forked is not None:
            self.forked.cancel()
            self.dirty.update(self.forked.partitions)
            self.forked = None
            self.hooks.snapshot_ended(None)

    def _failed(self, p: int, step: str, exc: BaseException) -> None:
        self.dirty.add(p)
        self.metrics.snapshots.labels("failed").inc()
        # our own messages in full; others by type only (a pickling error names the object it met)
        why = str(exc) if isinstance(exc, SnapshotError) else type(exc).__name__
        log.error("snapshot failed partition=%d step=%s error=%s; will retry", p, step, why)

    def _write(self, payloads: dict[int, bytes], offsets: dict[int, dict[str, int]], taken_at: float) -> None:
        """Send the payloads, flush, and cover the offsets of those acknowledged."""
        written = []
        for p, payload in sorted(payloads.items()):
            try:
                written.append(self.store.write_payload(p, payload, offsets[p]))
            except Exception as exc:  # a failed snapshot must not stop processing; the next one retries
                self._failed(p, "send", exc)
        try:
            self.flush(timeout=30)
        except (KafkaError, OutputsUnsent) as exc:  # the state records' own futures decide below
            log.warning("snapshot flush failed error=%s; will retry", type(exc).__name__)
        for w in written:
            if not w.durable():
                self._failed(w.partition, "acknowledge", SnapshotError(f"generation {w.seq} not acknowledged"))
                continue
            for topic, offset in offsets[w.partition].items():
                self.checkpoint.cover(TopicPartition(topic, w.partition), offset, w.seq)
            engine = self.partitions.engines.get(w.partition)
            if engine is not None:
                engine.note_state_bytes(w.payload_bytes)
            self.metrics.snapshots.labels("ok").inc()
            self.metrics.snapshot_bytes.set(w.payload_bytes)
            self.times[w.partition] = taken_at
