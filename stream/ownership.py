"""Partition ownership: restoring state when partitions arrive, handing it off when they leave.
A partition's state is its engine and its principals' open correlated incidents (``stream.correlate``).

Kept apart from the run loop (``stream.service``): rebalance callbacks run on kafka-python's IO
thread and must stay quick and non-blocking, restores run in the poll loop with the partitions
paused, and snapshots record the input offsets they reflect so commits never run ahead of them.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

from kafka import ConsumerRebalanceListener, TopicPartition
from kafka.errors import KafkaError

from detectors.engine import Engine
from stream import kafka_io
from stream.checkpoint import Checkpoint
from stream.correlate import Correlator
from stream.errors import ConfigError
from stream.http import Health
from stream.merge import Merger
from stream.metrics import Metrics
from stream.partitions import Partitions
from stream.settings import Settings
from stream.snapshot import MIN_KEY_BYTES
from stream.statestore import StateStore

log = logging.getLogger(__name__)


class RebalanceListener(ConsumerRebalanceListener):
    """Forwards kafka-python's callbacks to the owner (they run inside poll(), beside heartbeats)."""

    def __init__(self, service: PartitionOwnership) -> None:
        self.service = service

    def on_partitions_revoked(self, revoked: Any) -> None:
        self.service.on_revoked(set(revoked))

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.service.on_assigned(set(assigned))

    def on_partitions_lost(self, lost: Any) -> None:
        self.service.on_revoked(set(lost), lost=True)


class PartitionOwnership:
    """Mixin for :class:`~stream.service.Service`: everything that happens per owned partition."""

    settings: Settings
    metrics: Metrics
    health: Health
    consumer: Any
    producer: Any
    store: StateStore | None
    checkpoint: Checkpoint
    merger: Merger
    partitions: Partitions
    correlator: Correlator
    inputs: list[str]
    pending_restore: set[int]
    start_offsets: dict[TopicPartition, int]
    dirty: set[int]
    snapshot_times: dict[int, float]
    clock: Callable[[], float]
    _with_feedback: Callable[[Engine], Engine]

    def _state_store(self) -> StateStore | None:
        if self.settings.state_key is None:
            log.warning("no state_key configured: snapshots are off, every restart or rebalance starts cold")
            return None
        if len(self.settings.state_key.get_secret_value().encode()) < MIN_KEY_BYTES:
            raise ConfigError(f"state_key must be at least {MIN_KEY_BYTES} bytes")
        return StateStore(
            self.producer,
            lambda: kafka_io.consumer(self.settings, group_id=None),
            self.settings.state_topic,
            self.settings.group_id,
            self.settings.state_key.get_secret_value().encode(),
            refused=lambda reason: self.metrics.restores.labels(reason).inc(),
        )

    def snapshot_all(self, now: float, only: set[int] | None = None) -> None:
        """Snapshot every owned, restored partition that changed (or those of ``only``), with the
        offsets it reflects; once flushed and acknowledged, mark those offsets safe to commit."""
        assert self.store is not None
        due = self.dirty & set(self.partitions.engines) - self.pending_restore
        if only is not None:
            due &= only
        if not due:
            return
        self.producer.flush()  # alerts and dead letters of the handled records first
        written = []
        for p in sorted(due):
            engine = self.partitions.engines[p]
            offsets = {topic: self._next_offset(TopicPartition(topic, p)) for topic in self.inputs}
            try:
                written.append((self.store.write(p, engine, offsets, self.correlator.export(p)), offsets))
            except Exception as exc:  # a failed snapshot must not stop processing; the next one retries
                self.metrics.snapshots.labels("failed").inc()
                log.error("snapshot failed partition=%d error=%s", p, type(exc).__name__)
        try:
            self.producer.flush(timeout=30)
        except KafkaError as exc:
            log.warning("snapshot flush failed error=%s; will retry", type(exc).__name__)
        for w, offsets in written:
            if not w.durable():
                self.metrics.snapshots.labels("failed").inc()
                log.error("snapshot not acknowledged partition=%d generation=%d; will retry", w.partition, w.seq)
                continue
            for topic, offset in offsets.items():
                self.checkpoint.cover(TopicPartition(topic, w.partition), offset)
            self.partitions.engines[w.partition]._state_bytes = w.payload_bytes
            self.metrics.snapshots.labels("ok").inc()
            self.metrics.snapshot_bytes.set(w.payload_bytes)
            self.snapshot_times[w.partition] = now
            self.dirty.discard(w.partition)

    def _next_offset(self, tp: TopicPartition) -> int:
        """The next offset of ``tp`` the partition's engine has not seen."""
        handled = self.checkpoint.handled.get(tp)
        return handled + 1 if handled is not None else self.start_offsets[tp]

    _restore_retry_at = 0.0

    def restore_pending(self) -> None:
        """Restore owned partitions' state (paused meanwhile), seek to the offsets it reflects, resume.

        Runs in the poll loop (never in a rebalance callback). A transient failure to read the
        state topic keeps the partition paused and retries shortly: a cold start there would
        silently forget the partition's baselines.
        """
        if self.clock() < self._restore_retry_at:
            return
        for p in sorted(self.pending_restore):
            tps = [TopicPartition(topic, p) for topic in self.inputs]
            try:
                restored = self.store.restore(p) if self.store is not None else None
                if restored is None:
                    positions = {tp: self.consumer.position(tp, timeout_ms=10_000) for tp in tps}
                else:
                    positions = {tp: restored.offsets.get(tp.topic) for tp in tps}
                    for tp, offset in positions.items():
                        if offset is None:  # a topic the snapshot does not know: from the committed offset
                            positions[tp] = self.consumer.position(tp, timeout_ms=10_000)
            except (KafkaError, OSError) as exc:
                positions, error = {}, type(exc).__name__
            else:
                error = "PositionUnknown"
            if not positions or any(offset is None for offset in positions.values()):
                self._restore_retry_at = self.clock() + 2.0
                log.warning("state restore failed partition=%d error=%s; retrying", p, error)
                return
            if restored is None:
                self.partitions.engines[p] = self.partitions.make_engine()
                self.metrics.restores.labels("cold").inc()
                log.info("partition cold start partition=%d", p)
            else:
                self.partitions.engines[p] = self._with_feedback(restored.engine)
                self.correlator.restore(p, restored.incidents)
                restored.engine._state_bytes = restored.snapshot_bytes
                self.metrics.restores.labels("restored").inc()
                self.snapshot_times[p] = self.clock()
            for tp in tps:
                offset = positions[tp]
                assert offset is not None
                self.consumer.seek(tp, offset)
                self.start_offsets[tp] = offset
                self.checkpoint.cover(tp, offset)  # committing this is always safe
            self.consumer.resume(*tps)
            self.pending_restore.discard(p)
        self.health.ready = not self.pending_restore

    def on_revoked(self, revoked: set[TopicPartition], lost: bool = False) -> None:
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
                if self.store is not None:
                    self.snapshot_all(self.clock(), only=numbers)
                else:
                    self.producer.flush(timeout=30)
                self.checkpoint.commit_async(self.consumer, revoked)
            except Exception as exc:  # the snapshot or commit is best effort here: the last one stands
                log.warning("hand-off on revoke failed error=%s", type(exc).__name__)
        self.merger.drop(numbers)
        self.partitions.revoke(numbers)
        self.correlator.drop(numbers)
        self.pending_restore -= numbers
        self.dirty -= numbers
        for p in numbers:
            self.snapshot_times.pop(p, None)
        for tp in revoked:
            self.start_offsets.pop(tp, None)
        self.checkpoint.forget(revoked)
        for tp in revoked:
            with contextlib.suppress(KeyError):
                self.metrics.consumer_lag.remove(tp.topic, str(tp.partition))
        self.health.ready = False
        log.info("partitions %s count=%d", "lost" if lost else "revoked", len(revoked))

    def on_assigned(self, assigned: set[TopicPartition]) -> None:
        """Rebalance callback: only note and pause; restores run in the poll loop."""
        self.metrics.rebalances.labels("assigned").inc()
        new = {tp.partition for tp in assigned} - set(self.partitions.engines)
        if new:
            self.pending_restore |= new
            self.consumer.pause(*[tp for tp in assigned if tp.partition in new])
            self._restore_retry_at = 0.0
        owned = self.consumer.assignment()
        self.metrics.assigned.set(len(owned))
        self.health.ready = not self.pending_restore
        log.info("partitions assigned count=%d owned=%d", len(assigned), len(owned))

