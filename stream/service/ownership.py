"""Partition ownership: restoring state when partitions arrive, handing it off when they leave.

Kept apart from the run loop (:mod:`stream.service.service`): rebalance callbacks run inside
kafka-python's ``poll()``, beside its heartbeats, and must stay quick and non-blocking; restores run
in the poll loop with the partitions paused, and the offsets a partition resumes at are the ones
its state reflects, so commits never run ahead of it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

from kafka import ConsumerRebalanceListener, TopicPartition
from kafka.errors import KafkaError

from detectors.engine import Engine
from stream.alertmanager.correlate import Correlator
from stream.ops.http import Health
from stream.ops.metrics import Metrics
from stream.service.checkpoint import Checkpoint
from stream.service.merge import Merger
from stream.service.snapshots import Snapshots
from stream.state.partitions import Partitions

log = logging.getLogger(__name__)

#: how long a failed restore waits before it is tried again (the partitions stay paused meanwhile)
RESTORE_RETRY_S = 2.0


class PartitionOwnership(ConsumerRebalanceListener):
    """The consumer's rebalance listener, and the restores it leaves to the loop.

    ``adopt`` prepares a restored engine for use (the service gives it the shared feedback policy);
    ``snapshots`` is None when durable state is off.
    """

    def __init__(self, consumer: Any, inputs: list[str], partitions: Partitions, checkpoint: Checkpoint,
                 merger: Merger, correlator: Correlator, snapshots: Snapshots | None, flush: Callable[..., Any],
                 metrics: Metrics, health: Health, clock: Callable[[], float],
                 adopt: Callable[[Engine], Engine]) -> None:
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
        tps = [TopicPartition(topic, p) for topic in self.inputs]
        store = self.snapshots.store if self.snapshots is not None else None
        try:
            restored = store.restore(p) if store is not None else None
            known = {} if restored is None else restored.offsets
            positions = {tp: known.get(tp.topic) for tp in tps}
            for tp, offset in positions.items():
                if offset is None:  # no snapshot, or a topic it does not know: from the committed offset
                    positions[tp] = self.consumer.position(tp, timeout_ms=10_000)
            ends = self.consumer.end_offsets(tps)
        except (KafkaError, OSError) as exc:
            positions, error = {}, type(exc).__name__
        else:
            error = "PositionUnknown"
        if not positions or any(offset is None for offset in positions.values()):
            log.warning("state restore failed partition=%d error=%s; retrying", p, error)
            return False
        if restored is None:
            self.partitions.engines[p] = self.partitions.make_engine()
            self.metrics.restores.labels("cold").inc()
            log.info("partition cold start partition=%d", p)
        else:
            self.partitions.engines[p] = self.adopt(restored.engine)
            self.correlator.restore(p, restored.incidents)
            restored.engine.note_state_bytes(restored.snapshot_bytes)
            self.metrics.restores.labels("restored").inc()
            assert self.snapshots is not None
            self.snapshots.times[p] = self.clock()
        generation = None if store is None else store.seq.get(p)  # the next commits keep naming it
        for tp in tps:
            offset = positions[tp]
            assert offset is not None
            self.consumer.seek(tp, offset)
            self.checkpoint.resume(tp, offset, generation)
            self.ends[tp] = ends.get(tp, offset)
        self.consumer.resume(*tps)
        self.restoring.discard(p)
        return True

    def revoke(self, revoked: set[TopicPartition], lost: bool = False) -> None:
        """Rebalance callback (inside poll(): quick, no blocking consumer calls, so it also works on
        clients that run callbacks on an IO thread).

        Revoked partitions get a last snapshot (only if they changed) and an async commit of what
        it covers, so the new owner resumes exactly there; records buffered but not handled are
        dropped (the new owner reads them again). Lost partitions are dropped without writing.
        """
        self.metrics.rebalances.labels("revoked").inc()
        if self.snapshots is not None:
            self.snapshots.cancel_forked()  # it may hold a revoked partition; the rest is snapshotted later
        numbers = {tp.partition for tp in revoked}
        if not lost:
            try:
                if self.snapshots is not None:
                    self.snapshots.snapshot_all(self.clock(), only=numbers)
                else:
                    self.flush(timeout=30)
                self.checkpoint.commit_async(self.consumer, revoked)
            except Exception as exc:  # the snapshot or commit is best effort here: the last one stands
                log.warning("hand-off on revoke failed error=%s", type(exc).__name__)
        self.merger.drop(numbers)
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
