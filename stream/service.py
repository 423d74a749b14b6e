"""``privwatch run``: the consumer-group loop.

poll a batch → decode (bad records become dead letters) → merge the two topics in event time →
engine per partition → alerts to the alerts topic (keyed by ``alert_id``) and the Alertmanager
sink → store offsets → every ``commit_interval_ms``: flush, persist, commit. SIGTERM/SIGINT finish
the batch in hand, flush, commit and return 0. Rebalance callbacks only commit and swap engines.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import time
from collections.abc import Callable
from typing import Any

from kafka import ConsumerRebalanceListener, TopicPartition
from kafka.errors import KafkaError

from detectors.calibrate import PAGING_LEVELS
from detectors.engine import Engine, EngineConfig
from detectors.feedback import FeedbackPolicy
from stream import kafka_io
from stream.checkpoint import Checkpoint
from stream.correlate import Correlator
from stream.deadletter import DeadLetter
from stream.decode import Catalog, decode, dumps
from stream.errors import BadRecord, ConfigError
from stream.feedback import FeedbackReader
from stream.http import Health
from stream.merge import Item, Merger
from stream.metrics import Metrics
from stream.partitions import Partitions
from stream.settings import Settings
from stream.snapshot import MIN_KEY_BYTES
from stream.statestore import StateStore

log = logging.getLogger(__name__)

LAG_EVERY_S = 5.0
#: The event-lag histogram sees one event in this many (its quantiles, not its count, are what is
#: read; observing every event cost about 1 us, a few percent of the whole per-event budget).
LAG_SAMPLE_EVERY = 16


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, service: Service) -> None:
        self.service = service

    def on_partitions_revoked(self, revoked: Any) -> None:
        self.service.on_revoked(set(revoked))

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.service.on_assigned(set(assigned))

    def on_partitions_lost(self, lost: Any) -> None:
        self.service.on_revoked(set(lost), lost=True)


class Service:
    """Owns the clients and the loop; everything it decides is delegated to small collaborators."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        health: Health | None = None,
        sink: Any = None,
        catalog: Catalog | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.health = health or Health()
        self.sink = sink
        self.catalog = catalog
        self.clock = clock
        self.inputs = [settings.access_topic, settings.permission_topic]
        engine_config = EngineConfig(cooldown_s=settings.cooldown_s)
        self.feedback = FeedbackPolicy(on_suppress=lambda reason: metrics.suppressed.labels(reason).inc())
        self.feedback_reader: FeedbackReader | None = None
        self.partitions = Partitions(lambda: self._with_feedback(Engine(engine_config)))
        self.checkpoint = Checkpoint()
        self.merger = Merger(self.inputs, settings.merge_wait_ms / 1000.0)
        self.correlator = Correlator(window_s=settings.correlation_window_s)
        self.stopping = False
        self.consumer: Any = None
        self.producer: Any = None
        self.store: StateStore | None = None
        self.pending_restore: set[int] = set()
        self.start_offsets: dict[TopicPartition, int] = {}
        self.dirty: set[int] = set()
        self.snapshot_times: dict[int, float] = {}
        self._next_snapshot = 0.0
        self.newest_ts = 0.0
        self.handled_total = 0
        self._next_commit = 0.0
        self._next_lag = 0.0

    def _with_feedback(self, engine: Engine) -> Engine:
        engine.feedback = self.feedback
        return engine

    def _feedback_reader(self) -> FeedbackReader:
        return FeedbackReader(kafka_io.consumer(self.settings, group_id=None), self.settings.feedback_topic,
                              self.feedback, lambda verdict: self.metrics.feedback.labels(verdict).inc())

    # -- lifecycle -------------------------------------------------------------------------------
    def request_stop(self, *_: Any) -> None:
        if not self.stopping:
            log.info("stop requested; finishing the batch in hand")
        self.stopping = True

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)

    def run(self, max_idle_s: float | None = None) -> int:
        """Consume until stopped (or idle for ``max_idle_s``, for tests and the demo). Returns 0."""
        self.consumer = kafka_io.consumer(self.settings)
        self.producer = kafka_io.producer(self.settings)
        self.store = self._state_store()
        self.checkpoint.covered_only = self.store is not None
        self.feedback_reader = self._feedback_reader()
        self.feedback_reader.catch_up()
        try:
            n = kafka_io.check_copartitioned(self.consumer, self.inputs)
            log.info("inputs co-partitioned partitions=%d topics=%s", n, ",".join(self.inputs))
            if self.store is not None:
                self.store.check()
            self.consumer.subscribe(self.inputs, listener=_Rebalance(self))
            idle_since = self.clock()
            while not self.stopping:
                if self.poll_once():
                    idle_since = self.clock()
                elif max_idle_s is not None and self.clock() - idle_since > max_idle_s and self.caught_up():
                    break
            self.handle_items(drain=True)
            self.commit(snapshot=True)
            log.info("stopped cleanly handled=%d", self.handled_total)
            return 0
        finally:
            self.close()

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

    def close(self) -> None:
        # The consumer first: leaving the group runs on_revoked, which still needs the producer.
        if self.consumer is not None:
            self.consumer.close(autocommit=False)
        if self.feedback_reader is not None:
            self.feedback_reader.close()
        if self.sink is not None:
            self.sink.close(timeout_s=5.0)  # whatever is still unsent is counted as dropped
        if self.producer is not None:
            self.producer.flush(timeout=10)
            self.producer.close(timeout=10)

    # -- the loop --------------------------------------------------------------------------------
    def poll_once(self) -> int:
        """One iteration: poll, handle, maybe commit. Returns how many records were polled."""
        if self.pending_restore:
            self.restore_pending()
        if self.feedback_reader is not None:
            self.feedback_reader.poll()
        batch = self.consumer.poll(timeout_ms=self.settings.poll_timeout_ms,
                                   max_records=self.settings.max_poll_records)
        self.health.beat()
        started = time.perf_counter()
        n = 0
        now = self.clock()
        for tp, records in batch.items():
            n += len(records)
            for record in records:
                self.merger.add(self._item(tp, record, now))
        handled = self.handle_items()
        if n:
            self.metrics.batch_records.observe(n)
        if handled:
            self.metrics.batch_seconds.observe(time.perf_counter() - started)
        if self.sink is not None and self.newest_ts:
            self.sink.advance(self.newest_ts)
            self.correlator.expire(self.newest_ts)
        if now >= self._next_commit:
            self.commit()
        if now >= self._next_lag:
            self.update_lag()
        return n

    def _item(self, tp: TopicPartition, record: Any, now: float) -> Item:
        try:
            event = decode(record.value, now, self.catalog)
        except BadRecord as bad:
            return Item(float("-inf"), tp.topic, tp.partition, record.offset, record, bad, now)
        return Item(event.ts, tp.topic, tp.partition, record.offset, record, event, now)

    def handle_items(self, drain: bool = False) -> int:
        """Handle what the merger releases; offsets and metrics are updated once per batch."""
        now = self.clock()
        items = self.merger.release(now, drain)
        if not items:
            return 0
        handled_to: dict[tuple[str, int], int] = {}
        processed = {"access": 0, "permission": 0}
        newest = self.newest_ts
        for i, item in enumerate(items):
            if isinstance(item.payload, BadRecord):
                self.dead_letter(item, item.payload)
            elif self.process(item, now, observe_lag=not i % LAG_SAMPLE_EVERY):
                processed[item.payload.kind] += 1
            handled_to[item.topic, item.partition] = item.offset  # offset order within a topic-partition
        for (topic, partition), offset in handled_to.items():
            self.checkpoint.store(TopicPartition(topic, partition), offset)
            self.dirty.add(partition)
        for kind, n in processed.items():
            if n:
                self.metrics.events.labels(kind, "processed").inc(n)
        if self.newest_ts > newest:
            self.metrics.last_event_ts.set(self.newest_ts)
        self.handled_total += len(items)
        return len(items)

    def process(self, item: Item, now: float, observe_lag: bool = True) -> bool:
        """Run the engine on one event and publish its alerts; False when it was dead-lettered."""
        event = item.payload
        try:
            alerts = self.partitions.engine(item.partition).process(event, detected_at=now)
        except Exception as exc:  # a detector bug must not kill the service or lose the record
            log.exception("engine failed on a record; dead-lettering it")
            self.dead_letter(item, BadRecord("internal", f"{type(exc).__name__} in engine"))
            return False
        if observe_lag:
            self.metrics.event_lag.observe(max(0.0, now - event.ts))
        if event.ts > self.newest_ts:
            self.newest_ts = event.ts
        for alert in alerts:
            self.publish(alert)
        return True

    def publish(self, alert: dict[str, Any]) -> None:
        self.producer.send(self.settings.alerts_topic, key=alert["alert_id"].encode(), value=dumps(alert))
        detector = alert["detector"]
        self.metrics.alerts.labels(detector, alert["level"]).inc()
        self.metrics.severity.labels(detector).observe(alert["severity"])
        if detector == "drift":
            self.metrics.drift.labels((alert.get("baseline") or {}).get("scope", "organisation")).inc()
        log.info("alert detector=%s level=%s severity=%.1f", detector, alert["level"], alert["severity"])
        if self.sink is not None and alert["level"] in PAGING_LEVELS:
            incident = self.correlator.add(alert)
            if incident["updates"] > 1:
                self.metrics.suppressed.labels("correlated").inc()
            self.sink.submit(incident)

    def dead_letter(self, item: Item, bad: BadRecord) -> None:
        record = item.record
        letter = DeadLetter(record.value, record.key, bad.reason, bad.detail, item.topic, item.partition,
                            item.offset)
        self.producer.send(self.settings.dead_letter_topic, key=letter.key, value=letter.value,
                           headers=letter.headers())
        etype = "access" if item.topic == self.settings.access_topic else "permission"
        self.metrics.events.labels(etype, "dead_lettered").inc()
        self.metrics.dead_letters.labels(bad.reason).inc()
        log.warning("dead-lettered reason=%s topic=%s partition=%d offset=%d", bad.reason, item.topic,
                    item.partition, item.offset)

    # -- offsets, rebalances, lag ----------------------------------------------------------------
    def commit(self, snapshot: bool = False) -> None:
        """Flush outputs, snapshot state when due, then commit offsets (in that order).

        With snapshots on, what is committed is what a durable snapshot records (see Checkpoint),
        so offsets only move when a snapshot is written.
        """
        now = self.clock()
        self._next_commit = now + self.settings.commit_interval_ms / 1000.0
        if self.store is not None and (snapshot or now >= self._next_snapshot):
            self._next_snapshot = now + self.settings.snapshot_interval_s
            self.snapshot_all(now)
        try:
            if self.checkpoint.commit(self.consumer, flush=self.producer.flush):
                self.metrics.commits.inc()
        except KafkaError as exc:
            self.metrics.commit_failures.inc()
            log.warning("commit failed error=%s; will retry", type(exc).__name__)
        if self.snapshot_times:
            self.metrics.snapshot_age.set(now - min(self.snapshot_times.values()))

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
                written.append((self.store.write(p, engine, offsets), offsets))
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
        """Rebalance callback (on kafka-python's IO thread: no blocking consumer calls here).

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
        """Rebalance callback (IO thread): only note and pause; restores run in the poll loop."""
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

    def caught_up(self) -> bool:
        """True when every owned partition is restored and handled up to its log end."""
        owned = list(self.consumer.assignment())
        if not owned or len(self.merger) or self.pending_restore:
            return False
        try:
            ends = self.consumer.end_offsets(owned)
            positions = {tp: self.consumer.position(tp, timeout_ms=5000) for tp in owned}
        except KafkaError:
            return False
        return all(pos is not None and pos >= ends.get(tp, 0) for tp, pos in positions.items())

    def update_lag(self) -> None:
        self._next_lag = self.clock() + LAG_EVERY_S
        owned = list(self.consumer.assignment())
        if not owned:
            return
        try:
            ends = self.consumer.end_offsets(owned)
        except KafkaError:
            return
        for tp in owned:
            position = self.checkpoint.handled.get(tp, -1) + 1
            self.metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(max(0, ends.get(tp, 0) - position))
