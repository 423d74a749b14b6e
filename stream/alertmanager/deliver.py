"""Page delivery: a consumer group of its own over the alerts topic, committing only what
Alertmanager accepted, so pages not yet delivered survive restarts and outages.

The service writes every alert to the alerts topic; a paging one carries the incident it joined
(``incident``, :func:`stream.alertmanager.correlate.incident_summary`). :class:`Delivery` reads them
(group ``delivery_group_id``, by default ``group_id + ".deliver"``), keeps the latest update of each
page (:class:`~stream.alertmanager.pages.Pages`), posts what is due and commits the offsets read once
every page they hold was accepted. While Alertmanager fails, posts are retried with capped backoff
and reading stops (the partitions are paused, the group membership kept): nothing is committed
past an unsent page, however long the outage. A post Alertmanager refuses as invalid (4xx) is not
retried: it is counted (``rejected``) and logged, and delivery goes on.

A group that has committed nothing on a partition yet (a new ``delivery_group_id``, a new alerts
topic) starts there from the pages written in the last ``alertmanager_active_s`` (by record time):
older ones would already have ended in Alertmanager, and re-posting a week of retained pages as
active would page everyone for incidents long handled. Once a group has committed, it reads on from
its offsets whatever their age, so pages held back by an outage are all posted, active.

It runs as a thread of ``privwatch run`` (``deliver_in_run``, the default) or alone as ``privwatch
deliver`` (docs/operations.md).
"""

from __future__ import annotations

import argparse
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson
from kafka import ConsumerRebalanceListener, TopicPartition
from kafka.errors import KafkaError

from detectors.calibrate import PAGING_LEVELS
from stream.alertmanager.client import AlertmanagerError, Connection, post_alerts
from stream.alertmanager.mapping import check_evidence_url, to_alertmanager
from stream.alertmanager.pages import Pages, Post
from stream.alertmanager.pseudonym import pseudonymise
from stream.backoff import Backoff
from stream.ops.metrics import Metrics
from stream.ops.ratelog import RateLimitedLog
from stream.settings import Settings

log = logging.getLogger(__name__)

BATCH = 500  # alerts per post


class NewPartitions(ConsumerRebalanceListener):
    """Partitions assigned and not yet placed: paused in the rebalance callback, so that nothing is
    read from them before :meth:`Delivery.place` decides where a group with no offset starts."""

    def __init__(self, consumer: Any) -> None:
        self.consumer = consumer
        self.pending: set[TopicPartition] = set()

    def on_partitions_revoked(self, revoked: Any) -> None:
        self.pending -= set(revoked)

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.pending |= set(assigned)
        if assigned:
            self.consumer.pause(*assigned)


def delivery_group(settings: Settings) -> str:
    return settings.delivery_group_id or f"{settings.group_id}.deliver"


def connection(settings: Settings) -> Connection:
    def secret(value: Any) -> str | None:
        return None if value is None else str(value.get_secret_value())

    assert settings.alertmanager_url is not None
    return Connection(settings.alertmanager_url, secret(settings.alertmanager_bearer_token),
                      settings.alertmanager_username, secret(settings.alertmanager_password),
                      settings.alertmanager_ca_file, settings.alertmanager_cert_file, settings.alertmanager_key_file)


class Delivery:
    """Reads pages from the alerts topic and delivers them; ``consumer`` is made by :meth:`run` unless given."""

    def __init__(self, settings: Settings, metrics: Metrics, clock: Callable[[], float] = time.time,
                 post: Callable[[Connection, list[dict[str, Any]]], None] = post_alerts,
                 backoff: Backoff | None = None, beat: Callable[[], None] = lambda: None) -> None:
        check_evidence_url(settings.evidence_url)
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        self.post = post
        self.connection = connection(settings)
        self.pages = Pages("privwatch", settings.alertmanager_active_s, settings.alertmanager_resend_s)
        self.backoff = backoff or Backoff(initial_s=0.5, max_s=30.0)
        self.retry_at = 0.0
        self.beat = beat
        key = settings.pseudonym_key if settings.pseudonymise == "alertmanager" else None
        self.pseudonym_key = None if key is None else key.get_secret_value().encode()
        self.consumer: Any = None
        self.new_partitions: NewPartitions | None = None
        self.stopping = threading.Event()
        self.read = 0
        self.uncommitted = 0  # records read since the last commit
        self.unread_log = RateLimitedLog(log)
        for outcome in ("ok", "failed", "rejected"):
            metrics.am_sends.labels(outcome)

    # -- reading ---------------------------------------------------------------------------------
    def take(self, value: bytes | None) -> None:
        """One record of the alerts topic: a paging alert becomes (an update of) a page."""
        self.read += 1
        try:
            doc = orjson.loads(value or b"")
            paging = doc.get("level") in PAGING_LEVELS
        except (orjson.JSONDecodeError, AttributeError):
            self.metrics.am_sends.labels("rejected").inc()
            self.unread_log.log("alerts topic record is not an alert document; not paged")
            return
        if not paging:
            return
        incident = doc.get("incident")
        page = {**incident, "principal_id": doc.get("principal_id")} if isinstance(incident, dict) else doc
        if self.pseudonym_key is not None:
            page = pseudonymise(page, self.pseudonym_key)
        self.pages.take(page)

    # -- posting ---------------------------------------------------------------------------------
    def payload(self, post: Post) -> dict[str, Any]:
        s = self.settings
        return to_alertmanager(post.doc, runbook_base_url=s.runbook_base_url, evidence_url=s.evidence_url,
                               ends_at=post.ends_at, detail=s.alertmanager_detail)

    def deliver(self) -> bool:
        """Post what is due (unless backing off); True when every page read so far was accepted."""
        now = self.clock()
        if now < self.retry_at:
            return False
        posts = self.pages.due(now)
        for start in range(0, len(posts), BATCH):
            chunk = posts[start:start + BATCH]
            try:
                self.post(self.connection, [self.payload(p) for p in chunk])
            except AlertmanagerError as exc:
                if exc.retryable:
                    return self._failed(exc)
                self.metrics.am_sends.labels("rejected").inc(len(chunk))
                log.error("alertmanager rejected pages=%d, not retrying: %s", len(chunk), exc)
            else:
                self.metrics.am_sends.labels("ok").inc()
            self.pages.delivered(chunk, now)
        self.backoff.reset()
        self.metrics.am_queue.set(self.pages.unsent())
        return not self.pages.unsent()

    def _failed(self, exc: AlertmanagerError) -> bool:
        self.metrics.am_sends.labels("failed").inc()
        delay = self.backoff.next_delay()
        self.retry_at = self.clock() + delay
        self.metrics.am_queue.set(self.pages.unsent())
        log.warning("alertmanager post failed; retrying in %.1fs unsent=%d: %s", delay, self.pages.unsent(), exc)
        return False

    # -- the loop --------------------------------------------------------------------------------
    def step(self) -> int:
        """Deliver what is due; unless pages wait for Alertmanager, read a batch and deliver it; commit
        when all is accepted. Returns how many records were read."""
        consumer = self.consumer
        self.beat()
        if not self.deliver() and self.pages.unsent():
            consumer.pause(*consumer.assignment())  # read no further while pages wait
            consumer.poll(timeout_ms=200, max_records=1)  # stays in the group
            return 0
        if self.uncommitted:  # all accepted now: what was read before is safe to commit
            self._commit()
        pending = self.place()
        consumer.resume(*(consumer.assignment() - pending))
        batch = consumer.poll(timeout_ms=self.settings.poll_timeout_ms, max_records=BATCH)
        n = 0
        for records in batch.values():
            for record in records:
                self.take(record.value)
                n += 1
        self.uncommitted += n
        if n and self.deliver():
            self._commit()
        return n

    def place(self) -> set[TopicPartition]:
        """Start each newly assigned partition: from its committed offset, or, with none, from the
        first page written ``alertmanager_active_s`` ago (the end when there is none). Returns the
        partitions still to place (the broker did not answer)."""
        if self.new_partitions is None or not self.new_partitions.pending:
            return set()
        pending = self.new_partitions.pending
        since_ms = int((self.clock() - self.settings.alertmanager_active_s) * 1000)
        for tp in sorted(pending):
            try:
                if self.consumer.committed(tp) is None:
                    # the end first, as a number: a page written after it is read whatever happens next
                    # (seek_to_end would resolve later, past pages written meanwhile)
                    end = self.consumer.end_offsets([tp])[tp]
                    found = self.consumer.offsets_for_times({tp: since_ms}).get(tp)
                    self.consumer.seek(tp, end if found is None else min(found.offset, end))
                    log.info("page delivery: no committed offset partition=%d; starting from the pages of the "
                             "last %.0f s", tp.partition, self.settings.alertmanager_active_s)
            except KafkaError as exc:
                log.warning("page delivery: cannot place partition=%d error=%s; retrying", tp.partition,
                            type(exc).__name__)
                continue
            pending.discard(tp)
        return set(pending)

    def _commit(self) -> None:
        self.consumer.commit()
        self.uncommitted = 0

    def run(self, max_idle_s: float | None = None) -> int:
        """Deliver until stopped (or idle and all delivered for ``max_idle_s``). Returns 0."""
        from stream.kafka import clients

        self.consumer = clients.consumer(self.settings, group_id=delivery_group(self.settings))
        self.new_partitions = NewPartitions(self.consumer)
        self.consumer.subscribe([self.settings.alerts_topic], listener=self.new_partitions)
        log.info("page delivery started group=%s", delivery_group(self.settings))
        idle_since = time.monotonic()
        try:
            while not self.stopping.is_set():
                try:
                    read = self.step()
                except KafkaError as exc:  # the broker away for a while: nothing was committed, carry on
                    log.warning("page delivery: Kafka error=%s; retrying", type(exc).__name__)
                    self.stopping.wait(1.0)
                    continue
                if read:
                    idle_since = time.monotonic()
                elif max_idle_s is not None and time.monotonic() - idle_since > max_idle_s and not self.pages.unsent():
                    break
            if self.deliver() and self.uncommitted:
                self._commit()
        finally:
            self.consumer.close(autocommit=False)
        log.info("page delivery stopped read=%d unsent=%d", self.read, self.pages.unsent())
        return 0

    def stop(self) -> None:
        self.stopping.set()


def start_thread(settings: Settings, metrics: Metrics) -> tuple[Delivery, threading.Thread]:
    """Delivery as a daemon thread of ``privwatch run``."""
    delivery = Delivery(settings, metrics)
    thread = threading.Thread(target=delivery.run, name="page-delivery", daemon=True)
    thread.start()
    return delivery, thread


def register(sub: argparse._SubParsersAction) -> None:
    from stream.config import add_flags

    p = sub.add_parser("deliver", help="deliver pages from the alerts topic to Alertmanager (at least once)")
    add_flags(p)
    p.add_argument("--max-idle-s", type=float, default=None, help="exit after this long without records")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    import signal

    from prometheus_client import CollectorRegistry

    from stream.config import load_settings
    from stream.errors import ConfigError
    from stream.ops.http import Health, serve

    settings = load_settings(vars(args))
    if not settings.alertmanager_url:
        raise ConfigError("privwatch deliver needs alertmanager_url")
    registry = CollectorRegistry()
    metrics, health = Metrics(registry), Health()
    health.ready = True
    delivery = Delivery(settings, metrics, beat=health.beat)
    server = serve(settings.metrics_host, settings.metrics_port, registry, health) if settings.metrics_port else None
    signal.signal(signal.SIGTERM, lambda *_: delivery.stop())
    signal.signal(signal.SIGINT, lambda *_: delivery.stop())
    try:
        return delivery.run(max_idle_s=args.max_idle_s)
    finally:
        if server is not None:
            server.shutdown()
