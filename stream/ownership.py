"""Partition ownership: restoring state when partitions arrive, handing it off when they leave.
A partition's state is its engine and its principals' open correlated incidents (``stream.correlate``).

Kept apart from the run loop (``stream.service``): rebalance callbacks run on kafka-python's IO
thread and must stay quick and non-blocking, restores run in the poll loop with the partitions
paused, and snapshots record the input offsets they reflect so commits never run ahead of them.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from kafka import ConsumerRebalanceListener, TopicPartition
from kafka.errors import KafkaError

from detectors.engine import Engine
from stream import kafka_io, snapshot
from stream.checkpoint import Checkpoint
from stream.correlate import Correlator
from stream.errors import ConfigError, SnapshotError
from stream.forked import Forked
from stream.gctune import paused_gc
from stream.http import Health
from stream.merge import Merger
from stream.metrics import Metrics
from stream.partitions import Partitions
from stream.settings import Settings
from stream.snapshot import MIN_KEY_BYTES
from stream.statestore import StateStore

log = logging.getLogger(__name__)

#: a snapshot child still running after this long is killed, and the next snapshot runs in the loop
FORK_TIMEOUT_S = 600.0


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

    #: a periodic snapshot being encoded by a forked child (:mod:`stream.forked`), if any
    forked: Forked | None = None
    #: the last forked child failed (killed for memory, say): take the next snapshot in the loop
    _fork_failed = False

    def _due(self, only: set[int] | None) -> set[int]:
        """Owned, restored partitions that changed since their last snapshot (those of ``only``)."""
        due = self.dirty & set(self.partitions.engines) - self.pending_restore
        return due if only is None else due & only

    def _take(self, due: set[int]) -> dict[int, dict[str, int]]:
        """Start a snapshot of ``due``: flush the alerts and dead letters of the handled records first,
        and return the offsets each partition's state reflects. Events handled from now on mark their
        partition changed again; a failed snapshot marks it changed too (see :meth:`_write`)."""
        self.producer.flush()
        self.dirty -= due
        return {p: {topic: self._next_offset(TopicPartition(topic, p)) for topic in self.inputs} for p in due}

    def snapshot_all(self, now: float, only: set[int] | None = None) -> None:
        """Snapshot, in the loop, every owned, restored partition that changed (or those of ``only``),
        with the offsets it reflects; once flushed and acknowledged, mark those offsets safe to commit.
        A background snapshot still running is dropped: this one is newer."""
        assert self.store is not None
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
                    self._snapshot_failed(p, "encode", exc)
        self._write(payloads, offsets, now)
        self.metrics.snapshot_blocked.labels("loop").observe(time.perf_counter() - started)

    def snapshot_in_background(self, now: float) -> None:
        """Start a periodic snapshot of the changed partitions in a forked child, and go on; the next
        :meth:`collect_forked` after the child is done writes it. In the loop instead when the last
        child failed or the fork does."""
        assert self.store is not None
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
            for p in forked.partitions:
                self._snapshot_failed(p, "background", exc)
            return
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

    def _snapshot_failed(self, p: int, step: str, exc: BaseException) -> None:
        self.dirty.add(p)
        self.metrics.snapshots.labels("failed").inc()
        # our own messages in full; others by type only (a pickling error names the object it met)
        why = str(exc) if isinstance(exc, SnapshotError) else type(exc).__name__
        log.error("snapshot failed partition=%d step=%s error=%s; will retry", p, step, why)

    def _write(self, payloads: dict[int, bytes], offsets: dict[int, dict[str, int]], taken_at: float) -> None:
        """Send the payloads, flush, and cover the offsets of those acknowledged."""
        assert self.store is not None
        written = []
        for p, payload in sorted(payloads.items()):
            try:
                written.append(self.store.write_payload(p, payload, offsets[p]))
            except Exception as exc:  # a failed snapshot must not stop processing; the next one retries
                self._snapshot_failed(p, "send", exc)
        try:
            self.producer.flush(timeout=30)
        except KafkaError as exc:
            log.warning("snapshot flush failed error=%s; will retry", type(exc).__name__)
        for w in written:
            if not w.durable():
                self._snapshot_failed(w.partition, "acknowledge", SnapshotError(f"generation {w.seq} not acknowledged"))
                continue
            for topic, offset in offsets[w.partition].items():
                self.checkpoint.cover(TopicPartition(topic, w.partition), offset)
            engine = self.partitions.engines.get(w.partition)
            if engine is not None:
                engine._state_bytes = w.payload_bytes
            self.metrics.snapshots.labels("ok").inc()
            self.metrics.snapshot_bytes.set(w.payload_bytes)
            self.snapshot_times[w.partition] = taken_at

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
        self.cancel_forked()  # it may hold a revoked partition; what is still owned is snapshotted later
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

