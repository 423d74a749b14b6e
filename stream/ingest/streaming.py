"""Stream mode: a raw topic in (its own consumer group), contract events out to the access, permission
and authentication topics, keyed by principal (target for grants) so that the service's inputs are
co-partitioned whatever key the raw records had. A record that cannot be mapped goes to the
dead-letter topic with its reason (verbatim, headers as the service's).

At least once, without loss: offsets are committed only after every event produced from the records
they cover was acknowledged by the brokers (the send futures are checked after a flush); a crash
re-reads the uncommitted records and produces their events again with the same ``event_id``, which
the engine ignores as duplicates.
"""

from __future__ import annotations

import logging
import signal
import time
from typing import Any, cast

from kafka import TopicPartition
from kafka.structs import OffsetAndMetadata
from prometheus_client import CollectorRegistry

from stream.enrich.enricher import Enricher
from stream.enrich.reference import Reference
from stream.errors import OutputsUnsent
from stream.ingest.metrics import IngestMetrics
from stream.ingest.pipeline import Pipeline
from stream.ingest.readers import records
from stream.ingest.settings import IngestSettings
from stream.kafka import clients
from stream.kafka.deadletter import DeadLetter
from stream.ops.http import Health, serve

log = logging.getLogger(__name__)


class ProduceFailed(OutputsUnsent):
    """The brokers did not acknowledge events: nothing is committed, the records are read again (exit 7,
    as the service's unacknowledged outputs)."""


class Ingestor:
    """The loop's state: clients, pipeline, the send futures and offsets of the batch not yet committed."""

    def __init__(self, settings: IngestSettings, consumer: Any, producer: Any, pipeline: Pipeline,
                 metrics: IngestMetrics, health: Health | None = None) -> None:
        self.settings, self.consumer, self.producer = settings, consumer, producer
        self.pipeline, self.metrics, self.health = pipeline, metrics, health or Health()
        self.topics = {"access": settings.access_topic, "permission": settings.permission_topic,
                       "authentication": settings.authentication_topic}
        self.futures: list[Any] = []
        self.offsets: dict[TopicPartition, int] = {}
        self.stopping = False
        self._next_commit = 0.0

    def handle(self, tp: TopicPartition, record: Any) -> None:
        """Map one raw Kafka record (one raw record, or a file's worth: a JSON array or ``Records``)."""
        fmt = self.settings.format or ""
        for _, raw in records(record.value or b""):
            outcome = self.pipeline.run(raw)
            if outcome.reject is not None:
                self.metrics.records.labels(fmt, "rejected").inc()
                self.metrics.rejected.labels(outcome.reject.reason).inc()
                letter = DeadLetter(record.value, record.key, outcome.reject.reason, outcome.reject.detail, tp.topic,
                                    tp.partition, record.offset)
                self.futures.append(self.producer.send(self.settings.dead_letter_topic, key=letter.key,
                                                       value=letter.value, headers=letter.headers()))
                log.warning("dead-lettered reason=%s partition=%d offset=%d", outcome.reject.reason, tp.partition,
                            record.offset)
            elif outcome.skip is not None:
                self.metrics.records.labels(fmt, "skipped").inc()
                self.metrics.skipped.labels(outcome.skip).inc()
            else:
                self.metrics.records.labels(fmt, "mapped").inc()
                for etype, key, value in outcome.events:
                    self.futures.append(self.producer.send(self.topics[etype], key=key, value=value))
                    self.metrics.events.labels(etype).inc()
        self.offsets[tp] = record.offset + 1

    def poll_once(self) -> int:
        batch = self.consumer.poll(timeout_ms=self.settings.poll_timeout_ms,
                                   max_records=self.settings.max_poll_records)
        self.health.beat()
        n = 0
        for tp, recs in batch.items():
            for record in recs:
                self.handle(tp, record)
                n += 1
        if time.monotonic() >= self._next_commit:
            self.commit()
        return n

    def commit(self) -> None:
        """Flush, check that every send was acknowledged, then commit the offsets handled."""
        self._next_commit = time.monotonic() + self.settings.commit_interval_ms / 1000.0
        if not self.offsets:
            return
        self.producer.flush(timeout=self.settings.produce_timeout_s)
        failed = [f for f in self.futures if not f.is_done or f.failed()]
        if failed:
            self.metrics.produce_failures.inc(len(failed))
            first = failed[0].exception if failed[0].is_done else "not acknowledged in time"
            raise ProduceFailed(f"{len(failed)} produced record(s) not acknowledged ({first!r}); nothing committed, "
                                "the records will be read again on restart")
        self.consumer.commit({tp: OffsetAndMetadata(offset, "", -1) for tp, offset in self.offsets.items()})
        self.metrics.commits.inc()
        self.futures.clear()
        self.offsets.clear()

    def run(self, max_idle_s: float | None = None) -> int:
        idle_since = time.monotonic()
        while not self.stopping:
            if self.poll_once():
                idle_since = time.monotonic()
            elif max_idle_s is not None and time.monotonic() - idle_since > max_idle_s and self.caught_up():
                break
        self.commit()
        return 0

    def caught_up(self) -> bool:
        """True when partitions are assigned and every one is read to its end (for ``max_idle_s``)."""
        return clients.read_to_end(self.consumer)

    def request_stop(self, *_: Any) -> None:
        self.stopping = True


def run_stream(settings: IngestSettings, max_idle_s: float | None = None) -> int:
    """``privwatch ingest --from-topic RAW``: until SIGTERM/SIGINT (then finish the batch, commit, exit 0)."""
    logging.getLogger().setLevel(settings.log_level)
    kafka_settings = cast(Any, settings)  # the client builders read the same names from either settings
    registry = CollectorRegistry()
    metrics = IngestMetrics(registry, settings.format or "")
    health = Health()
    reference = Reference(settings, lambda: clients.consumer(kafka_settings, group_id=None),
                          lambda what, outcome: metrics.reloads.labels(what, outcome).inc())
    enricher = Enricher(reference.directory, reference.catalog, settings.admin_roles, settings.admin_groups,
                        resolve=True, on_gap=lambda gap: metrics.identity_gaps.labels(gap).inc())
    pipeline = Pipeline(settings.format or "", enricher, settings.privileged_permissions)
    consumer = clients.consumer(kafka_settings)
    producer = clients.producer(kafka_settings)
    server = serve(settings.metrics_host, settings.metrics_port, registry, health) if settings.metrics_port else None
    ingestor = Ingestor(settings, consumer, producer, pipeline, metrics, health)
    signal.signal(signal.SIGTERM, ingestor.request_stop)
    signal.signal(signal.SIGINT, ingestor.request_stop)
    log.info("ingest starting format=%s from_topic=%s", settings.format, settings.from_topic)
    try:
        consumer.subscribe([settings.from_topic])
        return ingestor.run(max_idle_s)
    finally:
        consumer.close(autocommit=False)
        producer.flush(timeout=10)
        producer.close(timeout=10)
        reference.close()
        if server is not None:
            server.shutdown()
