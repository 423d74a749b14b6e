"""Partition ownership: restoring state when partitions arrive, handing it off when they leave.

Kept apart from the run loop (:mod:`stream.service.service`): rebalance callbacks run inside
kafka-python's ``poll()``, beside its heartbeats, and must stay quick and non-blocking; restores run
in the poll loop with the partitions paused, and the offsets a partition resumes at are the ones
its state reflects, so commits never run ahead of it.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kafka import ConsumerRebalanceListener, TopicPartition
from kafka.errors import KafkaError

from detectors.engine import Engine
from detectors.portable import replace_detector
from stream.alertmanager.correlate import Correlator
from stream.ops.http import Health
from stream.ops.metrics import Metrics
from stream.service.bootstrap import Bootstrap
from stream.service.checkpoint import Checkpoint
from stream.service.merge import Merger
from stream.service.snapshots import Snapshots
from stream.state.partitions import Partitions
from stream.state.store import Restored

#: start rebuilding partition ``p``'s state (``detectors``: those only; None: all) into a fresh engine
#: from its input's history up to ``until`` (next offset per topic)
StartBootstrap = Callable[[int, Engine, dict[str, int], list[str] | None], Bootstrap]

log = logging.getLogger(__name__)

#: how long a failed restore waits before it is tried again (the partitions stay paused meanwhile)
RESTORE_RETRY_S = 2.0
#: poll-loop time per poll given to rebuilding a partition's state from history (the other partitions
#: flow in between)
BOOTSTRAP_SLICE_S = 0.25


@dataclass
class _Rebuilding:
    """A partition whose state is being rebuilt from history, and what it resumes with then."""

    bootstrap: Bootstrap
    restored: Restored | None
    positions: dict[TopicPartition, int | None]
    ends: dict[TopicPartition, int]


class PartitionOwnership(ConsumerRebalanceListener):
    """The consumer's rebalance listener, and the restores it leaves to the loop.

    ``adopt`` prepares a restored engine for use (the service gives it the shared feedback policy);
    ``snapshots`` is None when durable state is off; ``bootstrap`` starts rebuilding a partition's
    state from its input's history (None: state that cannot be restored starts cold).
    """

    def __init__(self, consumer: Any, inputs: list[str], partitions: Partitions, checkpoint: Checkpoint,
                 merger: Merger, correlator: Correlator, snapshots: Snapshots | None, flush: Callable[..., Any],
                 metrics: Metrics, health: Health, clock: Callable[[], float],
                 adopt: Callable[[Engine], Engine], bootstrap: StartBootstrap | None = None) -> None:
        self.bootstrap = bootstrap
        #: partitions whose state is being rebuilt from history (paused meanwhile)
        self.rebuilding: dict[int, _Rebuilding] = {}
        self.consumer = consumer
        self.inputs = inputs
        self.partitions = partitions
        self.checkpoint = checkpoint
        self.merger = merger
        self.correlator = correlator
        self.snapshots = snapshots
        self.flush = flush
        self.metrics = metrics
        self.health = health
        self.clock = clock
        self.adopt = adopt
        #: each owned input partition's end offset when its state was restored: what it has to fetch
        #: is known from then on, before its first fetch tells (the event-time merge needs it)
        self.ends: dict[TopicPartition, int] = {}
        self._retry_at = 0.0

    @property
    def restoring(self) -> set[int]:
        return self.partitions.restoring

    # -- kafka-python's callbacks ----------------------------------------------------------------
    def on_partitions_revoked(self, revoked: Any) -> None:
        self.revoke(set(revoked))

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.assign(set(assigned))

    def on_partitions_lost(self, lost: Any) -> None:
        self.revoke(set(lost), lost=True)

    # -- what they do ----------------------------------------------------------------------------
    def restore_pending(self) -> None:
        """Restore owned partitions' state (paused meanwhile), seek to the offsets it reflects, resume.

        Runs in the poll loop (never in a rebalance callback). A transient failure to read the
        state topic keeps the partition paused and retries shortly: a cold start there would
        silently forget the partition's baselines.
        """
        if self.clock() < self._retry_at:
            return
        for p in sorted(self.restoring):
            if not self._restore(p):
                self._retry_at = self.clock() + RESTORE_RETRY_S
                break
        self.health.ready = not self.restoring

    def _restore(self, p: int) -> bool:
        rebuilding = self.rebuilding.get(p)
        if rebuilding is not None:
            return self._rebuild_step(p, rebuilding)
        tps = [TopicPartition(topic, p) for topic in self.inputs]
        store = self.snapshots.store if self.snapshots is not None else None
        try:
            restored = store.restore(p, self.partitions.make_engine) if store is not None else None
            known = {} if restored is None else restored.offsets
            positions = {tp: known.get(tp.topic) for tp in tps}
            for tp, offset in positions.items():
                if offset is None:  # no state, or a topic it does not know: from the committed offset
                    positions[tp] = self.consumer.position(tp, timeout_ms=10_000)
            ends = self.consumer.end_offsets(tps)
        except (KafkaError, OSError) as exc:
            positions, error = {}, type(exc).__name__
        else:
            error = "PositionUnknown"
        if not positions or any(offset is None for offset in positions.values()):
            log.warning("state restore failed partition=%d error=%s; retrying", p, error)
            return False
        refused = store is not None and p in store.refusals
        if store is not None:
            store.refusals.discard(p)
        until = {tp.topic: offset for tp, offset in positions.items() if offset}
        lost = None if restored is None else restored.rebuild
        if self.bootstrap is not None and until and (refused if restored is None else lost):
            fresh = self.partitions.make_engine()
            self.rebuilding[p] = _Rebuilding(self.bootstrap(p, fresh, until, lost), restored, positions, ends)
            self.metrics.restores.labels("bootstrap").inc()
            log.warning("partition state rebuilt from the input's history partition=%d detectors=%s", p,
                        ",".join(lost) if lost else "all")
            return True
        if restored is None:
            self.metrics.restores.labels("cold").inc()
            log.info("partition cold start partition=%d", p)
        self._activate(p, restored, None, positions, ends)
        return True

    def _rebuild_step(self, p: int, rebuilding: _Rebuilding) -> bool:
        """Replay a slice of history into the rebuilt state; once done, the partition goes on."""
        if rebuilding.bootstrap.step(time.perf_counter() + BOOTSTRAP_SLICE_S):
            del self.rebuilding[p]
            self._activate(p, rebuilding.restored, rebuilding.bootstrap, rebuilding.positions, rebuilding.ends)
        return True

    def _activate(self, p: int, restored: Restored | None, rebuilt: Bootstrap | None,
                  positions: dict[TopicPartition, int | None], ends: dict[TopicPartition, int]) -> None:
        """Install the partition's engine (restored, rebuilt, both, or new), seek where its state resumes
        and resume it."""
        engine = self.partitions.make_engine() if restored is None else self.adopt(restored.engine)
        if rebuilt is not None and rebuilt.detectors is None:
            engine = rebuilt.engine
        elif rebuilt is not None:
            names = set(rebuilt.detectors or ())
            for detector in rebuilt.engine.detectors:
                if detector.name in names:
                    replace_detector(engine, detector, rebuilt.engine.calibrators[detector.name])
        self.partitions.engines[p] = engine
        if restored is not None:
            self.correlator.restore(p, restored.incidents)
            engine.note_state_bytes(restored.snapshot_bytes)
            if rebuilt is None:
                self.metrics.restores.labels("restored").inc()
            assert self.snapshots is not None
            self.snapshots.times[p] = self.clock()
        store = self.snapshots.store if self.snapshots is not None else None
        if self.snapshots is not None:
            self.snapshots.track(p, rewrite_all=rebuilt is not None or (restored is not None and restored.rewrite_all),
                                 also=() if restored is None else restored.resign)
        anchor = None if store is None else store.anchor(p)  # the next commits keep naming it
        tps = list(positions)
        for tp in tps:
            offset = positions[tp]
            assert offset is not None
            self.consumer.seek(tp, offset)
            self.checkpoint.resume(tp, offset, anchor)
            self.ends[tp] = ends.get(tp, offset)
        self.consumer.resume(*tps)
        self.restoring.discard(p)
        self.metrics.rebuilding.set(len(self.rebuilding))

    def revoke(self, revoked: set[TopicPartition], lost: bool = False) -> None:
        """Rebalance callback (inside poll(): quick, no blocking consumer calls, so it also works on
        clients that run callbacks on an IO thread).

        Revoked partitions get a last snapshot (only if they changed) and an async commit of what
        it covers, so the new owner resumes exactly there; records buffered but not handled are
        dropped (the new owner reads them again). Lost partitions are dropped without writing.
        """
        self.metrics.rebalances.labels("revoked").inc()
        numbers = {tp.partition for tp in revoked}
        if not lost:
            try:
                if self.snapshots is not None:
                    self.snapshots.finish(numbers, self.clock())
                else:
                    self.flush(timeout=30)
                self.checkpoint.commit_async(self.consumer, revoked)
            except Exception as exc:  # the snapshot or commit is best effort here: the last one stands
                log.warning("hand-off on revoke failed error=%s", type(exc).__name__)
        self.merger.drop(numbers)
        for p in numbers & set(self.rebuilding):
            self.rebuilding.pop(p).bootstrap.cancel()
        self.partitions.revoke(numbers)
        self.correlator.drop(numbers)
        if self.snapshots is not None:
            self.snapshots.forget(numbers)
        self.checkpoint.forget(revoked)
        for tp in revoked:
            self.ends.pop(tp, None)
            with contextlib.suppress(KeyError):
                self.metrics.consumer_lag.remove(tp.topic, str(tp.partition))
        self.health.ready = False
        log.info("partitions %s count=%d", "lost" if lost else "revoked", len(revoked))

    def assign(self, assigned: set[TopicPartition]) -> None:
        """Rebalance callback: only note and pause; restores run in the poll loop."""
        self.metrics.rebalances.labels("assigned").inc()
        new = {tp.partition for tp in assigned} - set(self.partitions.engines)
        if new:
            self.restoring.update(new)
            self.consumer.pause(*[tp for tp in assigned if tp.partition in new])
            self._retry_at = 0.0
        owned = self.consumer.assignment()
        self.metrics.assigned.set(len(owned))
        self.health.ready = not self.restoring
        log.info("partitions assigned count=%d owned=%d", len(assigned), len(owned))
