"""``privwatch run``: the consumer-group loop.

poll a batch → decode (bad records become dead letters) → merge the two topics in event time →
engine per partition → alerts to the alerts topic (keyed by ``alert_id``) and the Alertmanager
sink → store offsets → every ``commit_interval_ms``: flush, persist, commit. SIGTERM/SIGINT finish
the batch in hand, flush, commit and return 0. Rebalance callbacks only commit and swap engines.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable
from typing import Any

from kafka import ConsumerRebalanceListener, TopicPartition
from kafka.errors import KafkaError

from detectors.engine import Engine, EngineConfig
from stream import kafka_io
from stream.checkpoint import Checkpoint
from stream.deadletter import DeadLetter
from stream.decode import Catalog, decode, dumps
from stream.errors import BadRecord
from stream.http import Health
from stream.merge import Item, Merger
from stream.metrics import Metrics
from stream.partitions import Partitions
from stream.settings import Settings

log = logging.getLogger(__name__)

LAG_EVERY_S = 5.0


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, service: Service) -> None:
        self.service = service

    def on_partitions_revoked(self, revoked: Any) -> None:
        self.service.on_revoked(set(revoked))

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.service.on_assigned(set(assigned))


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
        self.partitions = Partitions(lambda: Engine(engine_config))
        self.checkpoint = Checkpoint()
        self.merger = Merger(self.inputs, settings.merge_wait_ms / 1000.0)
        self.stopping = False
        self.consumer: Any = None
        self.producer: Any = None
        self.newest_ts = 0.0
        self._next_commit = 0.0
        self._next_lag = 0.0

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
        try:
            n = kafka_io.check_copartitioned(self.consumer, self.inputs)
            log.info("inputs co-partitioned partitions=%d topics=%s", n, ",".join(self.inputs))
            self.consumer.subscribe(self.inputs, listener=_Rebalance(self))
            idle_since = self.clock()
            while not self.stopping:
                if self.poll_once():
                    idle_since = self.clock()
                elif max_idle_s is not None and self.clock() - idle_since > max_idle_s:
                    break
            self.handle_items(drain=True)
            self.commit()
            log.info("stopped cleanly")
            return 0
        finally:
            self.close()

    def close(self) -> None:
        # The consumer first: leaving the group runs on_revoked, which still needs the producer.
        if self.consumer is not None:
            self.consumer.close(autocommit=False)
        if self.sink is not None:
            self.sink.flush(timeout_s=5.0)
        if self.producer is not None:
            self.producer.flush(timeout=10)
            self.producer.close(timeout=10)

    # -- the loop --------------------------------------------------------------------------------
    def poll_once(self) -> int:
        """One iteration: poll, handle, maybe commit. Returns how many records were polled."""
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
        handled = 0
        now = self.clock()
        for item in self.merger.release(now, drain):
            if isinstance(item.payload, BadRecord):
                self.dead_letter(item, item.payload)
            else:
                self.process(item, now)
            self.checkpoint.store(TopicPartition(item.topic, item.partition), item.offset)
            handled += 1
        return handled

    def process(self, item: Item, now: float) -> None:
        event = item.payload
        try:
            alerts = self.partitions.engine(item.partition).process(event, detected_at=now)
        except Exception as exc:  # a detector bug must not kill the service or lose the record
            log.exception("engine failed on a record; dead-lettering it")
            self.dead_letter(item, BadRecord("internal", f"{type(exc).__name__} in engine"))
            return
        self.metrics.events.labels(event.kind, "processed").inc()
        self.metrics.event_lag.observe(max(0.0, now - event.ts))
        if event.ts > self.newest_ts:
            self.newest_ts = event.ts
            self.metrics.last_event_ts.set(event.ts)
        for alert in alerts:
            self.publish(alert)

    def publish(self, alert: dict[str, Any]) -> None:
        self.producer.send(self.settings.alerts_topic, key=alert["alert_id"].encode(), value=dumps(alert))
        self.metrics.alerts.labels(alert["detector"], alert["level"]).inc()
        self.metrics.severity.labels(alert["detector"]).observe(alert["severity"])
        log.info("alert detector=%s level=%s severity=%.1f", alert["detector"], alert["level"], alert["severity"])
        if self.sink is not None:
            self.sink.submit(alert)

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
    def commit(self) -> None:
        self._next_commit = self.clock() + self.settings.commit_interval_ms / 1000.0
        try:
            if self.checkpoint.commit(self.consumer, flush=self.producer.flush):
                self.metrics.commits.inc()
        except KafkaError as exc:
            self.metrics.commit_failures.inc()
            log.warning("commit failed error=%s; will retry", type(exc).__name__)

    def on_revoked(self, revoked: set[TopicPartition]) -> None:
        self.metrics.rebalances.labels("revoked").inc()
        self.handle_items(drain=False)
        self.commit()
        numbers = {tp.partition for tp in revoked}
        self.merger.drop(numbers)
        self.partitions.revoke(numbers)
        self.checkpoint.forget(revoked)
        for tp in revoked:
            try:
                self.metrics.consumer_lag.remove(tp.topic, str(tp.partition))
            except KeyError:
                pass
        self.health.ready = False
        log.info("partitions revoked count=%d", len(revoked))

    def on_assigned(self, assigned: set[TopicPartition]) -> None:
        self.metrics.rebalances.labels("assigned").inc()
        self.partitions.assign(sorted({tp.partition for tp in assigned}))
        owned = self.consumer.assignment()
        self.metrics.assigned.set(len(owned))
        self.health.ready = True
        log.info("partitions assigned count=%d owned=%d", len(assigned), len(owned))

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
