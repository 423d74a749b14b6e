"""When the owned partitions' state goes to the state topic, and what that lets be committed.

A partition's state is its engine and its principals' open correlated incidents
(:mod:`stream.alertmanager.correlate`). Every ``snapshot_interval_s``, :class:`Snapshots` cuts a
checkpoint of the partitions that changed (:mod:`stream.state.changelog`): the outputs are flushed,
the offsets handled so far taken, and each engine's shared state encoded. The principals that changed
since the previous cut are then written a slice at a time, within ``checkpoint_budget_ms`` of each
poll, while the loop goes on (a principal whose next event comes first is written just before it is
handled). Once every record, chunk and manifest is acknowledged, the cut's offsets are covered
(:meth:`stream.service.checkpoint.Checkpoint.cover`) and the next commit commits them; once it has,
that generation is the one a restore goes back to. So a checkpoint costs the loop what changed, a
slice at a time, never a copy of all the state.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from kafka import TopicPartition

from detectors.portable import principal_ids
from stream.alertmanager.correlate import Correlator
from stream.ops.gctune import HeldGc
from stream.ops.metrics import Metrics
from stream.service.checkpoint import Checkpoint
from stream.service.hooks import Hooks
from stream.state.partitions import Partitions
from stream.state.store import StateStore

log = logging.getLogger(__name__)


class Snapshots:
    """Incremental checkpoints of the owned partitions: periodic, a slice per poll; whole, in the loop,
    on shutdown and for revoked partitions."""

    def __init__(self, store: StateStore, partitions: Partitions, correlator: Correlator, checkpoint: Checkpoint,
                 flush: Callable[..., Any], metrics: Metrics, inputs: list[str], interval_s: float,
                 budget_s: float = 0.02, hooks: Hooks | None = None) -> None:
        self.store = store
        self.partitions = partitions
        self.correlator = correlator
        self.checkpoint = checkpoint
        self.flush = flush
        self.metrics = metrics
        self.inputs = inputs
        self.interval_s = interval_s
        self.budget_s = budget_s
        self.hooks = hooks or Hooks()
        #: when each partition's last durable checkpoint was cut (or its state restored)
        self.times: dict[int, float] = {}
        #: partitions of the checkpoint in progress, and when it was cut (wall clock)
        self.writing: set[int] = set()
        self._taken_at = 0.0
        self._loop_s = 0.0
        self._gc = HeldGc()
        self._next = 0.0

    @property
    def busy(self) -> bool:
        return bool(self.writing)

    def track(self, p: int, rewrite_all: bool = False, also: Iterable[str] = ()) -> None:
        """Start noting partition ``p``'s changed principals (its engine is new or restored); with
        ``rewrite_all`` every principal counts as changed (a whole engine restored, or rebuilt), and
        so do those of ``also`` (records signed with a key being rotated out)."""
        engine = self.partitions.engines[p]
        partition_log = self.store.log(p)
        engine.track_changes(partition_log.write)
        if rewrite_all and engine.changed is not None:
            engine.changed.update(principal_ids(engine))
        if engine.changed is not None:
            engine.changed.update(also)

    def persist(self, now: float, force: bool = False) -> None:
        """Go on with the checkpoint in progress, or cut the next one when due (``force``: now, and finish
        it in the loop, as on shutdown). Called between the outputs' flush and the offsets' commit."""
        if force:
            self.finish(None, now)
            return
        if not self.writing and now >= self._next:
            self._next = now + self.interval_s
            self._cut(self._due(None), now)
        self.step()

    def step(self) -> bool:
        """Write the checkpoint in progress for up to the budget; True when it became durable (its
        offsets are covered: the caller commits)."""
        if not self.writing:
            return False
        started = time.perf_counter()
        deadline = started + self.budget_s
        for p in sorted(self.writing):
            partition_log = self.store.logs[p]
            if partition_log.cut is not None and not partition_log.cut.sealed:
                if not partition_log.drain(deadline):
                    break
                self.store.seal(p)
        spent = time.perf_counter() - started
        self._loop_s += spent
        self.metrics.snapshot_blocked.labels("slice").observe(spent)
        return self._collect()

    def finish(self, only: set[int] | None, now: float) -> None:
        """Cut (if anything changed) and write a checkpoint of the owned partitions (those of ``only``)
        in the loop, and wait for it: shutdown, and revoked partitions."""
        if self.writing and (only is None or self.writing & only):
            self._complete()
        self._cut(self._due(only), now)
        self._complete()

    def _complete(self) -> None:
        started = time.perf_counter()
        for p in sorted(self.writing):
            partition_log = self.store.logs[p]
            if partition_log.cut is not None and not partition_log.cut.sealed:
                partition_log.drain(float("inf"))
                self.store.seal(p)
        self.flush(timeout=30)
        self._loop_s += time.perf_counter() - started
        self.metrics.snapshot_blocked.labels("final").observe(time.perf_counter() - started)
        self._collect(final=True)

    def oldest(self) -> float | None:
        """When the oldest of the owned partitions' checkpoints was cut (None: none yet)."""
        return min(self.times.values()) if self.times else None

    def forget(self, partitions: set[int]) -> None:
        """Partitions no longer owned: nothing of theirs is due, and their changelogs go."""
        for p in partitions:
            self.times.pop(p, None)
            if p in self.writing:
                self.store.logs[p].abandon()
                self.writing.discard(p)
            self.store.forget(p)
        if not self.writing:
            self._gc.release()

    def committed(self, anchors: dict[TopicPartition, str]) -> None:
        """The offsets of these anchors are committed (Checkpoint.commit's ``committed``)."""
        for tp, anchor in anchors.items():
            generation = int(anchor.split(";", 1)[0][2:])
            self.store.committed_at(tp.partition, generation)

    def _due(self, only: set[int] | None) -> set[int]:
        """Owned, restored partitions whose state changed since their last cut (those of ``only``)."""
        ready = self.partitions.ready() if only is None else self.partitions.ready() & only
        return {p for p in ready if self.partitions.engines[p].changed}

    def _cut(self, due: set[int], now: float) -> None:
        """Cut a checkpoint of ``due``: flush the alerts and dead letters of the handled records, take the
        offsets, encode each shared state. Principals changed from now on belong to the next cut."""
        if not due:
            return
        started = time.perf_counter()
        self.flush()
        for p in sorted(due):
            offsets = {topic: self.checkpoint.next_offset(TopicPartition(topic, p)) for topic in self.inputs}
            try:
                self.store.start(p, self.partitions.engines[p], offsets, self.correlator.export(p))
            except Exception as exc:  # a failed checkpoint must not stop processing; the next one retries
                self._failed(p, "encode", exc)
                continue
            self.writing.add(p)
        if self.writing:
            self._gc.hold()
        self._taken_at = now
        self._loop_s = time.perf_counter() - started
        self.metrics.snapshot_blocked.labels("cut").observe(self._loop_s)
        self.hooks.checkpoint_started()

    def _collect(self, final: bool = False) -> bool:
        """Cover the offsets of every sealed, acknowledged partition of the checkpoint; True when it is
        all done. A partition whose sends failed goes back to the next checkpoint."""
        covered = False
        for p in sorted(self.writing):
            partition_log = self.store.logs[p]
            durable = partition_log.durable()
            if durable is None and not final:
                continue
            if not durable:
                partition_log.abandon()
                self.writing.discard(p)
                self._failed(p, "acknowledge", RuntimeError("records not acknowledged"))
                continue
            cut = partition_log.finish()
            anchor = partition_log.anchor(cut.generation)
            for topic, offset in cut.offsets.items():
                self.checkpoint.cover(TopicPartition(topic, p), offset, anchor)
            self.writing.discard(p)
            self.times[p] = self._taken_at
            engine = self.partitions.engines.get(p)
            if engine is not None:
                engine.note_state_bytes(len(cut.shared))
            self.metrics.snapshots.labels("ok").inc()
            self.metrics.state_records.inc(len(cut.written))
            self.metrics.snapshot_bytes.set(len(cut.shared))
            covered = True
        if not self.writing:
            self._gc.release()
            self.hooks.checkpoint_ended(self._loop_s)
        return covered and not self.writing

    def _failed(self, p: int, step: str, exc: BaseException) -> None:
        self.metrics.snapshots.labels("failed").inc()
        log.error("checkpoint failed partition=%d step=%s error=%s; will retry", p, step, type(exc).__name__)
