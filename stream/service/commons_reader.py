"""The commons topic's reader: a thread with a consumer of its own that keeps the latest partial of
every input partition, verified and decoded, for the poll loop to take (:mod:`stream.service.commons`).

It assigns itself every partition of the (compacted) topic, without a consumer group, and reads it
from the beginning: what compaction kept is the latest partial of each input partition. Signatures
are checked and pickles loaded here, so the loop only swaps references. A partition this instance
owns is verified but not decoded (the live engine wins, and re-reading its own publications every
interval would be wasted work); its latest record is held, and decoded once the partition is no
longer owned (revoked: its last partial stays usable until the new owner publishes).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from kafka import TopicPartition

from stream.ops.ratelog import RateLimitedLog
from stream.state import commons as records
from stream.state.commons import CommonsRefused, Partial

log = logging.getLogger(__name__)

#: how long one poll of the commons topic waits (also how soon a stop is noticed)
POLL_MS = 500
#: pause after the topic could not be read, before trying again
RETRY_S = 2.0


class CommonsReader:
    """Reads ``topic`` in a thread (:meth:`start`, :meth:`stop`); :meth:`latest` hands over the decoded
    partials of the partitions not in :attr:`owned`, by input partition.

    ``partitions`` is the input topics' partition count (a partial written for another count is
    refused), ``versions`` each detector's state version here; ``refused(reason)`` counts refusals.
    """

    def __init__(self, make_consumer: Callable[[], Any], topic: str, group: str, keys: dict[str, bytes],
                 partitions: int, versions: Mapping[str, int], refused: Callable[[str], None]) -> None:
        self.make_consumer = make_consumer
        self.topic = topic
        self.group = group
        self.keys = keys
        self.partitions = partitions
        self.versions = dict(versions)
        self.refused = refused
        #: input partitions this instance owns (set by the loop; replaced, never mutated)
        self.owned: frozenset[int] = frozenset()
        self._lock = threading.Lock()
        self._latest: dict[int, Partial] = {}
        self._held: dict[int, tuple[Any, bytes]] = {}
        #: bumped whenever what :meth:`latest` returns changes
        self.version = 0
        #: set once the topic was read up to the end it had when reading started
        self.caught_up = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._refusals = RateLimitedLog(log, logging.WARNING, burst=5)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="privwatch.commons", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def latest(self) -> tuple[int, dict[int, Partial]]:
        """(version, input partition -> its latest partial), partitions owned when it was read left out."""
        with self._lock:
            return self.version, self._latest

    # -- the thread ------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            consumer = None
            try:
                consumer = self.make_consumer()
                ends = self.assign(consumer)
                while not self._stop.is_set():
                    self.read_once(consumer, ends)
            except Exception as exc:  # the loop goes on with what it has; a reader that stops would go unnoticed
                log.warning("commons topic unreadable topic=%s error=%s; retrying", self.topic, type(exc).__name__)
                self._stop.wait(RETRY_S)
            finally:
                if consumer is not None:
                    consumer.close()

    def read_once(self, consumer: Any, ends: dict[TopicPartition, int]) -> None:
        """One poll: verify and decode what came, decode what was held for partitions no longer owned."""
        batch = consumer.poll(timeout_ms=POLL_MS)
        for chunk in batch.values():
            self._take(chunk)
        self._decode_released()
        if not self.caught_up.is_set() and all(consumer.position(tp) >= end for tp, end in ends.items()):
            self.caught_up.set()

    def assign(self, consumer: Any) -> dict[TopicPartition, int]:
        """Assign ``consumer`` every partition of the topic from the beginning; their end offsets now."""
        numbers = consumer.partitions_for_topic(self.topic)
        if not numbers:
            raise LookupError(f"topic {self.topic} not visible")
        tps = [TopicPartition(self.topic, n) for n in sorted(numbers)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        return dict(consumer.end_offsets(tps))

    def _take(self, records_in: list[Any]) -> None:
        """Verify each record (the latest per key wins: the log's order); decode those not owned."""
        latest: dict[int, Any] = {}
        for record in records_in:
            p = records.parse_key(self.group, record.key)
            if p is not None:
                latest[p] = record
        for p, record in latest.items():
            if record.value is None:  # a tombstone: the partition's partial was deleted
                self._publish(p, None)
                continue
            try:
                header, payload = records.verify(record.value, record.key, self.keys, self.partitions)
                if header.partition != p:
                    raise CommonsRefused("malformed", "key and body name different partitions")
                if p in self.owned:
                    self._held[p] = (header, payload)
                    continue
                self._publish(p, records.decode(header, payload, self.versions))
            except CommonsRefused as exc:
                self.refused(exc.reason)
                self._refusals.log("commons record refused reason=%s topic=%s offset=%d", exc.reason, self.topic,
                                   record.offset)

    def _decode_released(self) -> None:
        """Decode the held records of partitions no longer owned."""
        for p in [p for p in self._held if p not in self.owned]:
            header, payload = self._held.pop(p)
            try:
                self._publish(p, records.decode(header, payload, self.versions))
            except CommonsRefused as exc:
                self.refused(exc.reason)

    def _publish(self, p: int, partial: Partial | None) -> None:
        """Hand over a new mapping (the loop may hold the old one)."""
        self._held.pop(p, None)
        with self._lock:
            latest = dict(self._latest)
            if partial is None:
                latest.pop(p, None)
            else:
                latest[p] = partial
            self._latest = latest
            self.version += 1
