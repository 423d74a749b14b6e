"""Baselines shared across partitions and instances (issue 32): the poll loop's side.

Within one instance, every owned engine sees the others' live partial aggregates
(:func:`detectors.commons.link`). Across instances, every ``commons_interval_s`` each owned partition's
:meth:`~detectors.engine.Engine.partial` is published, signed with the state key, to the compacted
commons topic (:mod:`stream.state.commons`), and a reader thread keeps every partition's latest
(:mod:`stream.service.commons_reader`); those of partitions this instance does not own are the
engines' remote partials, dropped once older than ``commons_max_age_s`` (their instance died and no
one took the partition over yet). :meth:`Commons.tick` runs once per poll: it relinks only when the
engines or the remote partials changed. A partial is not an output: a lost one is harmless (the next
interval sends it again), so publishing never holds a commit back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Mapping
from typing import Any, cast

from kafka.errors import KafkaError

from detectors.commons import link
from stream.backoff import Backoff
from stream.kafka import clients
from stream.ops.metrics import Metrics
from stream.service.commons_reader import CommonsReader
from stream.settings import Settings
from stream.state import commons as records
from stream.state.commons import Partial
from stream.state.partitions import Partitions

log = logging.getLogger(__name__)

#: longest the start-up waits for the commons topic to be read to its end
CATCH_UP_S = 10.0
#: longest a send to the commons topic may block the loop (waiting for the topic's metadata, or for
#: room in the commons producer's buffer); the outputs' producer is not shared, so never waits on it
SEND_BLOCK_MS = 500
#: the longest pause between rounds of publishing after one failed to send
MAX_BACKOFF_S = 300.0


class Publisher:
    """Sends partials to the commons topic, signed like the durable state's records."""

    def __init__(self, producer: Any, topic: str, group: str, key: bytes, key_id: str, partitions: int,
                 versions: Mapping[str, int], metrics: Metrics) -> None:
        self.producer = producer
        self.topic = topic
        self.group = group
        self.key = key
        self.key_id = key_id
        self.partitions = partitions
        self.versions = dict(versions)
        self.metrics = metrics
        self.sequence = 0

    def publish(self, p: int, partial: Mapping[str, Any], now: float) -> bool:
        """Send one partition's partial; False when the send failed at once (the round stops there)."""
        self.sequence += 1
        rkey, value = records.seal(partial, self.versions, self.key, self.key_id, self.group, p, self.partitions,
                                   self.sequence, now)
        try:
            future = self.producer.send(self.topic, key=rkey, value=value)
        except KafkaError as exc:
            self._failed(exc)
            return False
        future.add_callback(lambda _: self.metrics.commons_published.inc())
        future.add_errback(self._failed)
        return True

    def _failed(self, exc: BaseException) -> None:
        self.metrics.commons_publish_failures.inc()
        log.warning("commons partial not published error=%s", type(exc).__name__)


class Commons:
    """Keeps the owned engines linked with each other and with the fresh remote partials; publishes."""

    def __init__(self, partitions: Partitions, metrics: Metrics, settings: Settings) -> None:
        self.partitions = partitions
        self.metrics = metrics
        self.settings = settings
        self.interval_s = settings.commons_interval_s
        self.max_age_s = settings.commons_max_age_s
        self.publisher: Publisher | None = None
        self.reader: CommonsReader | None = None
        self._next_publish = 0.0
        self._backoff = Backoff(initial_s=max(self.interval_s, 0.1), max_s=max(self.interval_s, MAX_BACKOFF_S))
        self._linked: tuple[Any, ...] | None = None
        #: what the engines see from other instances now, by input partition
        self.remote: dict[int, Partial] = {}
        #: the engines linked last
        self.linked_to: dict[int, Any] = {}

    def connect(self, keys: dict[str, bytes] | None, partitions: int) -> None:
        """Share with other instances too, through the commons topic (``keys``: the state keys by id;
        None: the engines of this instance only). ``partitions``: the input topics' partition count."""
        s = self.settings
        if not s.commons_interval_s:
            log.info("commons off (commons_interval_s=0): each partition's baselines are its own")
            return
        if keys is None:
            log.info("commons shared within this instance only (durable state off: no key to sign them)")
            return
        versions = engine_versions(self.partitions.make_engine)
        producer = clients.producer(s, max_block_ms=SEND_BLOCK_MS)  # its own: never in the outputs' flush
        self.publisher = Publisher(producer, s.commons_topic, s.group_id, keys[s.state_key_id], s.state_key_id,
                                   partitions, versions, self.metrics)
        refused = self.metrics.commons_refused
        self.reader = CommonsReader(lambda: clients.consumer(s, group_id=None), s.commons_topic, s.group_id, keys,
                                    partitions, versions, lambda reason: refused.labels(reason).inc())
        self.reader.start()
        if not self.reader.caught_up.wait(CATCH_UP_S):  # so the first events already see the others' partials
            log.warning("commons topic not read to its end in %.0f s; going on (partials arrive meanwhile)", CATCH_UP_S)
        log.info("commons shared across instances topic=%s interval_s=%s max_age_s=%s", s.commons_topic,
                 s.commons_interval_s, s.commons_max_age_s)

    def close(self) -> None:
        if self.reader is not None:
            self.reader.stop()
        if self.publisher is not None:
            self.publisher.producer.close(timeout=5)

    def tick(self, now: float) -> None:
        """Relink when the owned engines or the usable remote partials changed; publish when due.
        Nothing with ``commons_interval_s`` 0: each partition's baselines are its own."""
        if not self.interval_s:
            return
        engines = dict(self.partitions.engines)
        fresh, stale = self._remote(engines, now)
        # by identity; the objects themselves are kept (self.linked_to), so no id is reused meanwhile
        state = (tuple((p, id(e)) for p, e in sorted(engines.items())),
                 tuple((p, id(partial)) for p, partial in sorted(fresh.items())))
        if state != self._linked:
            link(cast(dict[Hashable, Any], engines), {p: partial.aggregates for p, partial in fresh.items()})
            self._linked, self.remote, self.linked_to = state, fresh, engines
            log.debug("commons relinked local=%d remote=%d stale=%d", len(engines), len(fresh), stale)
        if self.publisher is not None and now >= self._next_publish:
            self._publish(engines, now)
        m = self.metrics
        m.commons_partitions.labels("local").set(len(engines))
        m.commons_partitions.labels("remote").set(len(fresh))
        m.commons_partitions.labels("stale").set(stale)
        m.commons_oldest_age.set(max((now - partial.published_at for partial in fresh.values()), default=0.0))

    def _publish(self, engines: Mapping[int, Any], now: float) -> None:
        """One round: every owned partition's partial; after a send that failed at once (the topic gone,
        the buffer full), the next round waits longer, up to :data:`MAX_BACKOFF_S`."""
        assert self.publisher is not None
        for p, engine in sorted(engines.items()):
            if not self.publisher.publish(p, engine.partial(), now):
                self._next_publish = now + self._backoff.next_delay()
                return
        self._backoff.reset()
        self._next_publish = now + self.interval_s

    def _remote(self, engines: Mapping[int, Any], now: float) -> tuple[dict[int, Partial], int]:
        """(the fresh remote partials, how many are stale); tells the reader which partitions are owned."""
        if self.reader is None:
            return {}, 0
        owned = frozenset(engines)  # one being restored has no engine yet: its last partial serves meanwhile
        if owned != self.reader.owned:
            self.reader.owned = owned
        _, latest = self.reader.latest()
        fresh = {p: partial for p, partial in latest.items()
                 if p not in owned and now - partial.published_at <= self.max_age_s}
        stale = sum(1 for p in latest if p not in owned and p not in fresh)
        return fresh, stale


def engine_versions(make_engine: Callable[[], Any]) -> dict[str, int]:
    """Each detector's state version in this version's engines (what a commons record must match)."""
    return {d.name: d.state_version for d in make_engine().detectors}
