"""``privwatch run``: the consumer-group loop.

poll a batch → decode (bad records become dead letters) → merge the two topics in event time →
engine per partition → alerts to the alerts topic (keyed by ``alert_id``; a paging one carries the
incident it joined, which :mod:`stream.alertmanager.deliver` pages) → store offsets → every
``commit_interval_ms``: flush (every output acknowledged: :mod:`stream.kafka.outputs`), persist,
commit. SIGTERM/SIGINT finish the batch in hand, flush, commit and return 0. Rebalances and restores live in
:mod:`stream.service.ownership`, durable state in :mod:`stream.service.snapshots`, the commit order
in :mod:`stream.service.checkpoint`.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable
from typing import Any

from kafka import TopicPartition
from kafka.errors import KafkaError

from detectors.calibrate import PAGING_LEVELS
from detectors.engine import Engine, EngineConfig
from detectors.feedback import FeedbackPolicy
from stream.alertmanager.correlate import Correlator, incident_summary
from stream.alertmanager.pseudonym import pseudonymise, pseudonyms
from stream.contract.decode import Catalog, Item, decode_records, dumps
from stream.detection import engine_config as detection_config
from stream.enrich.enricher import Enricher
from stream.enrich.reference import Reference
from stream.errors import BadRecord, OutputsUnsent
from stream.feedback.keys import alert_id_key
from stream.feedback.reader import FeedbackReader
from stream.feedback.setup import feedback_reader
from stream.kafka import clients
from stream.kafka.deadletter import DEFAULT_LIMIT_BYTES, DeadLetter, dead_letter_output
from stream.kafka.outputs import Output, Outputs
from stream.kafka.topics import check_topics, prune_inputs
from stream.ops import heap
from stream.ops.gctune import loop_gc
from stream.ops.http import Health
from stream.ops.metrics import Metrics
from stream.ops.ratelog import RateLimitedLog
from stream.service import durable
from stream.service.bootstrap import Bootstrap, history_reader
from stream.service.checkpoint import Checkpoint
from stream.service.commons import Commons
from stream.service.dispatch import dispatch
from stream.service.hooks import Hooks
from stream.service.lag import EVERY_S as LAG_EVERY_S
from stream.service.lag import Lag
from stream.service.merge import Merger
from stream.service.ownership import PartitionOwnership
from stream.service.snapshots import Snapshots
from stream.settings import Settings
from stream.state.partitions import Partitions
from stream.state.store import StateStore

log = logging.getLogger(__name__)


class Service:
    """Owns the clients and the loop; what it decides is delegated to small collaborators it holds:
    :class:`~stream.service.ownership.PartitionOwnership` (rebalances, restores),
    :class:`~stream.service.snapshots.Snapshots` (durable state) and
    :class:`~stream.service.checkpoint.Checkpoint` (what is safe to commit, and the commit order).

    ``engine_config`` replaces the engines' defaults; ``hooks`` observe the loop (the bench's)."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        health: Health | None = None,
        catalog: Catalog | None = None,
        clock: Callable[[], float] = time.time,
        engine_config: EngineConfig | None = None,
        hooks: Hooks | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.health = health or Health()
        key = settings.pseudonym_key if settings.pseudonymise == "alerts" else None
        self.pseudonym_key = None if key is None else key.get_secret_value().encode()
        self.catalog = catalog
        self.clock = clock
        self.hooks = hooks or Hooks()
        self.inputs = [settings.access_topic, settings.permission_topic, settings.authentication_topic]
        config = engine_config or detection_config(settings)
        #: the directory and the catalog's rules (None until :meth:`load_reference`; tests may set them)
        self.reference: Reference | None = None
        self.enrich: Enricher | None = None
        self.feedback = FeedbackPolicy(on_suppress=lambda reason: metrics.suppressed.labels(reason).inc(),
                                       pseudonyms=pseudonyms(self.pseudonym_key))
        self.alert_key = alert_id_key(settings) or b""  # the alert ids' MAC (detectors/alerts.py)
        self.feedback_reader: FeedbackReader | None = None
        self.partitions = Partitions(lambda: self.adopt(Engine(config)))
        self.commons = Commons(self.partitions, metrics, settings)  # docs/commons.md
        self.checkpoint = Checkpoint()
        self.merger = Merger(self.inputs, settings.merge_wait_ms / 1000.0)
        self.correlator = Correlator(window_s=settings.correlation_window_s)
        self.stopping = False
        self.consumer: Any = None
        self.producer: Any = None
        self.outputs: Outputs | None = None
        #: bytes a dead letter may take (the dead-letter topic's max.message.bytes, learnt at start-up)
        self.dead_letter_limit = DEFAULT_LIMIT_BYTES
        self.dead_letter_log = RateLimitedLog(log)
        self.snapshots: Snapshots | None = None
        self._processed_kinds = ("access", "permission", "authentication")
        self.ownership: PartitionOwnership | None = None
        self.newest_ts = 0.0
        self.handled_total = 0
        self._next_commit = 0.0
        self._next_lag = 0.0
        self.lag: Lag | None = None
        self._idle = False

    def load_reference(self) -> None:
        """Load the directory and catalog the settings name (files, or compacted topics read to their end)
        and fill events from them from now on; nothing to do when neither is configured."""
        s = self.settings
        if not (s.directory_file or s.directory_topic or s.catalog_file or s.catalog_topic):
            return
        self.reference = Reference(s, lambda: clients.consumer(s, group_id=None),
                                   lambda what, outcome: self.metrics.reloads.labels(what, outcome).inc())
        self.enrich = Enricher(self.reference.directory, self.reference.catalog, s.admin_roles, s.admin_groups,
                               resolve=False, on_gap=lambda gap: self.metrics.identity_gaps.labels(gap).inc())

    def adopt(self, engine: Engine) -> Engine:
        """Prepare an engine (new or restored) for this service: it shares the feedback policy."""
        engine.feedback = self.feedback
        engine.alert_key = self.alert_key
        return engine

    def attach(self, consumer: Any, producer: Any, store: StateStore | None = None) -> PartitionOwnership:
        """Give the service its clients (and its state store, None: no durable state); returns the
        rebalance listener to subscribe with."""
        self.consumer, self.producer = consumer, producer
        metrics = self.metrics
        metrics.outputs(self.settings.alerts_topic, self.settings.dead_letter_topic)
        metrics.ready.set_function(lambda: float(self.health.is_ready()))
        self.outputs = outputs = Outputs(producer, on_ack=lambda topic, n: metrics.produced.labels(topic).inc(n),
                                         on_failure=lambda topic: metrics.produce_failures.labels(topic).inc())
        self.checkpoint.covered_only = store is not None
        self.snapshots = None if store is None else Snapshots(
            store, self.partitions, self.correlator, self.checkpoint, outputs.flush, self.metrics, self.inputs,
            self.settings.snapshot_interval_s, self.settings.checkpoint_budget_ms / 1000.0, self.hooks)
        self.ownership = PartitionOwnership(
            consumer, self.inputs, self.partitions, self.checkpoint, self.merger, self.correlator, self.snapshots,
            outputs.flush, self.metrics, self.health, self.clock, self.adopt,
            None if store is None else self.start_bootstrap)
        self.lag = Lag(consumer, self.checkpoint, metrics, self.ownership.ends)
        self.merger.lag = self.lag.remaining
        return self.ownership

    def start_bootstrap(self, p: int, engine: Engine, until: dict[str, int], detectors: list[str] | None) -> Bootstrap:
        """Rebuild partition ``p``'s state (``detectors``' only; None: all) into ``engine`` from the input's
        retained history, read by a consumer of its own and decoded as the loop decodes."""
        def decode(records: list[Any], topic: str, partition: int) -> list[Item]:
            return decode_records(records, topic, partition, self.clock(), self.catalog, self.enrich,
                                  self.settings.max_clock_skew_s)

        return Bootstrap(p, engine, until, history_reader(self.settings), decode, detectors)

    def _state_store(self, producer: Any, consumer: Any, keys: dict[str, bytes]) -> StateStore:
        return durable.state_store(self.settings, producer, keys, consumer,
                                   lambda reason: self.metrics.restores.labels("refused").inc())

    def _feedback_reader(self) -> FeedbackReader:
        return feedback_reader(self.settings, clients.consumer(self.settings, group_id=None), self.feedback,
                               self.metrics)

    # -- lifecycle -------------------------------------------------------------------------------
    def request_stop(self, *_: Any) -> None:
        if not self.stopping:
            log.info("stop requested; finishing the batch in hand")
        self.stopping = True

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)

    def run(self, max_idle_s: float | None = None) -> int:
        """Consume until stopped (or idle for ``max_idle_s``, for tests and the demo). Returns 0; raises
        :class:`~stream.errors.OutputsUnsent` (exit 7) when stopped with outputs unacknowledged."""
        heap.keep_free_heap(self.settings.heap_keep_mb << 20)  # before the clients allocate their buffers
        keys = durable.state_keys(self.settings)
        facts = check_topics(self.settings, durable_state=keys is not None)
        self.dead_letter_limit = facts.dead_letter_max_bytes
        consumer = clients.input_consumer(self.settings)
        producer = clients.producer(self.settings)
        prune_inputs(consumer, self.inputs, self.settings.authentication_topic)  # in place: the merger holds it
        self.load_reference()
        store = None if keys is None else self._state_store(producer, consumer, keys)
        listener = self.attach(consumer, producer, store)
        self.feedback_reader = self._feedback_reader()
        self.feedback_reader.catch_up(self.settings.feedback_catch_up_s)
        try:
            n = clients.check_copartitioned(self.consumer, self.inputs)
            log.info("inputs co-partitioned partitions=%d topics=%s durable_state=%s", n, ",".join(self.inputs),
                     "on" if self.snapshots is not None else "off (every restart starts cold)")
            if self.snapshots is not None:
                self.snapshots.store.check()
                durable.check_partitioning(self.snapshots.store, n)
            self.commons.connect(keys, n)
            self.consumer.subscribe(self.inputs, listener=listener)
            idle_since = self.clock()
            with loop_gc():
                while not self.stopping:
                    if self.poll_once():
                        idle_since = self.clock()
                    elif max_idle_s is not None and self.clock() - idle_since > max_idle_s and self.caught_up():
                        break
            if self.outputs is None or not self.outputs.stalled:  # stalled: exit 7 now, no more retries
                self.handle_items(drain=True)
            self.commit(snapshot=True)
            if self.outputs is not None and (self.outputs.stalled or self.outputs.inflight):
                raise OutputsUnsent("stopped with alerts or dead letters the broker did not acknowledge "
                                    f"({self.outputs.last_error}); offsets were not committed past them")
            log.info("stopped cleanly handled=%d", self.handled_total)
            return 0
        finally:
            self.close()

    def close(self) -> None:
        self.commons.close()  # The consumer next: leaving the group runs on_revoked, which needs the producer.
        if self.consumer is not None:
            self.consumer.close(autocommit=False)
        if self.feedback_reader is not None:
            self.feedback_reader.close()
        if self.reference is not None:
            self.reference.close()
        if self.producer is not None:
            self.producer.flush(timeout=10)
            self.producer.close(timeout=10)

    # -- the loop --------------------------------------------------------------------------------
    def outputs_stalled(self) -> bool:
        """While an output is refused: retry it (with backoff) and keep every partition paused, the
        instance not ready. True until every output is acknowledged again."""
        outputs = self.outputs
        if outputs is None or not outputs.stalled:
            return False
        if outputs.retry():
            self.health.blocked = None
            restoring = self.partitions.restoring
            self.consumer.resume(*[tp for tp in self.consumer.assignment() if tp.partition not in restoring])
            return False
        self.health.blocked = f"outputs not acknowledged ({outputs.last_error})"
        self.consumer.pause(*self.consumer.assignment())
        return True

    def poll_once(self) -> int:
        """One iteration: poll, handle, maybe commit. Returns how many records were polled."""
        if self.partitions.restoring and self.ownership is not None:
            self.ownership.restore_pending()
        self.commons.tick(self.clock())
        if self.outputs_stalled():
            self.consumer.poll(timeout_ms=self.settings.poll_timeout_ms, max_records=1)  # stays in the group
            self.health.beat()
            return 0
        if self.feedback_reader is not None:
            self.feedback_reader.poll(idle=self._idle)
        if self.reference is not None:
            self.reference.refresh()
        most = self.settings.max_poll_records
        if self.snapshots is not None and self.snapshots.busy:  # each poll's records may each write a principal
            most = min(most, self.settings.checkpoint_poll_records)
        batch = self.consumer.poll(timeout_ms=self.settings.poll_timeout_ms, max_records=most)
        self.health.beat()
        started = time.perf_counter()
        n = 0
        now = self.clock()
        for tp, records in batch.items():
            n += len(records)
            self.merger.extend(tp.topic, tp.partition, decode_records(
                records, tp.topic, tp.partition, now, self.catalog, self.enrich, self.settings.max_clock_skew_s))
        handled = self.handle_items()
        if self.snapshots is not None and self.snapshots.busy and self.snapshots.step():
            self.commit()  # a checkpoint became durable: commit what it covers now
        if n:
            self.metrics.batch_records.observe(n)
        if handled:
            self.metrics.batch_seconds.observe(time.perf_counter() - started)
        if now >= self._next_commit:
            self.commit()
        if now >= self._next_lag and self.lag is not None:
            self._next_lag = now + LAG_EVERY_S
            self.lag.observe()
        self.hooks.polled(self, n)
        self._idle = n == 0
        return n

    def handle_items(self, drain: bool = False) -> int:
        """Handle what the merger releases (:func:`stream.service.dispatch.dispatch`, compiled: each event
        through its partition's engine, its alerts published; a record the engine fails on is
        dead-lettered). Offsets and metrics are updated once per batch."""
        now = self.clock()
        items = self.merger.release(now, drain)
        if self.merger.timed_out:
            self.metrics.merge_timeouts.inc(self.merger.timed_out)
            self.merger.timed_out = 0
        if not items:
            return 0
        # topic -> partition -> last offset handled (a tuple key per item cost about 0.4k instructions)
        handled_to: dict[str, dict[int, int]] = {topic: {} for topic in self.inputs}
        processed = dict.fromkeys(self._processed_kinds, 0)
        newest = self.newest_ts
        released = len(items)
        self.newest_ts = dispatch(items, self, now, handled_to, processed, newest)  # empties items
        for topic, offsets in handled_to.items():
            for partition, offset in offsets.items():
                self.checkpoint.store(TopicPartition(topic, partition), offset)
        for kind, n in processed.items():
            if n:
                self.metrics.events.labels(kind, "processed").inc(n)
        if self.newest_ts > newest:
            self.metrics.last_event_ts.set(self.newest_ts)
        self.handled_total += released
        return released

    def engine(self, partition: int) -> Engine:
        """The engine of an input partition (created empty if the partition has none yet)."""
        return self.partitions.engine(partition)

    def observe_lag(self, seconds: float, held_s: float) -> None:
        self.metrics.event_lag.observe(seconds)
        self.metrics.merge_hold.observe(held_s)

    def publish(self, alert: dict[str, Any], partition: int = -1) -> None:
        """Produce an alert raised on input ``partition``; a paging one carries its principal's open
        incident, merged with it (what delivery pages)."""
        detector = alert["detector"]
        paging = alert["level"] in PAGING_LEVELS
        if paging:
            incident = self.correlator.add(alert, partition)
            if incident["updates"] > 1:
                self.metrics.suppressed.labels("correlated").inc()
            alert["incident"] = incident_summary(incident)
        if self.pseudonym_key is not None:
            alert = pseudonymise(alert, self.pseudonym_key, self.alert_key)
        assert self.outputs is not None
        self.outputs.send(Output(self.settings.alerts_topic, alert["alert_id"].encode(), dumps(alert)))
        self.metrics.alerts.labels(detector, alert["level"]).inc()
        self.metrics.severity.labels(detector).observe(alert["severity"])
        self.hooks.published(alert)
        if detector == "drift":
            self.metrics.drift.labels((alert.get("baseline") or {}).get("scope", "organisation")).inc()
        log.log(logging.INFO if paging else logging.DEBUG, "alert detector=%s level=%s severity=%.1f", detector,
                alert["level"], alert["severity"])

    def dead_letter(self, item: Item, bad: BadRecord) -> None:
        record = item.record
        letter = DeadLetter(record.value, record.key, bad.reason, bad.detail, item.topic, item.partition,
                            item.offset).fit(self.dead_letter_limit)
        assert self.outputs is not None
        self.outputs.send(dead_letter_output(self.settings.dead_letter_topic, letter))
        etype = {self.settings.access_topic: "access", self.settings.permission_topic: "permission",
                 self.settings.authentication_topic: "authentication"}.get(item.topic, "unknown")
        self.metrics.events.labels(etype, "dead_lettered").inc()
        self.metrics.dead_letters.labels(bad.reason).inc()
        self.dead_letter_log.log("dead-lettered reason=%s topic=%s partition=%d offset=%d", bad.reason, item.topic,
                                 item.partition, item.offset)

    # -- offsets, rebalances, lag ----------------------------------------------------------------
    def commit(self, snapshot: bool = False) -> None:
        """Commit in the checkpoint's order (flush outputs, persist state, commit offsets). A periodic
        checkpoint of the state is cut here and written a slice per poll (:meth:`poll_once`);
        ``snapshot`` writes one whole in the loop now (shutdown).

        With durable state on, what is committed is what a durable checkpoint records (see Checkpoint),
        so offsets only move when a checkpoint is written.
        """
        now = self.clock()
        self._next_commit = now + self.settings.commit_interval_ms / 1000.0
        snapshots = self.snapshots
        persist = None if snapshots is None else (lambda: snapshots.persist(now, force=snapshot))
        committed = None if snapshots is None else snapshots.committed
        assert self.outputs is not None
        try:
            if self.checkpoint.commit(self.consumer, self.outputs.flush, persist, committed):
                self.metrics.commits.inc()
        except OutputsUnsent as exc:
            log.warning("commit held back: %s", exc)
        except KafkaError as exc:
            self.metrics.commit_failures.inc()
            log.warning("commit failed error=%s; will retry", type(exc).__name__)
        oldest = None if snapshots is None else snapshots.oldest()
        if oldest is not None:
            self.metrics.snapshot_age.set(now - oldest)
    def caught_up(self) -> bool:
        """True when every owned partition is restored, handled up to its log end, and its outputs
        acknowledged."""
        if len(self.merger) or self.partitions.restoring or self.outputs_stalled() or self.lag is None:
            return False
        return self.lag.caught_up()
