"""Rebuilding a partition's state from the input topics' retained history, instead of starting cold.

When a partition's state is refused (a rollback, tampering, a key rotated out too early) or some
detectors' state cannot be migrated to this version's layout, the detectors that lost their state
would relearn from scratch: a cold start, blind for days where history is needed. Instead a
:class:`Bootstrap` reads the partition's input topics with a reader of its own, from the oldest
retained record up to the offsets the rest of the state reflects (``until``: the restored state's, or
the group's committed ones), merges them in event time as the service does, and runs them through
those detectors with nothing published. The partition stays paused meanwhile and resumes where the
group left it; a slice of the history is read per poll (``budget_s``) so the other partitions keep
flowing. What the retained history does not reach back to stays unlearned (logged: the oldest event
replayed).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from kafka import TopicPartition

from detectors.engine import Engine
from stream.contract.decode import Item
from stream.errors import BadRecord
from stream.kafka import clients
from stream.service.merge import Merger
from stream.settings import Settings

log = logging.getLogger(__name__)


def history_reader(settings: Settings) -> Any:
    """A consumer of its own (no group) for the input's retained history, tuned for throughput."""
    return clients.consumer(settings, group_id=None, max_poll_records=5000, max_partition_fetch_bytes=8 << 20)

#: decode one topic-partition's records into merger items (the service's decode_records, with its
#: catalog, enrichment and clock-skew bound)
Decode = Callable[[list[Any], str, int], list[Item]]


class Bootstrap:
    """Replays partition ``p``'s retained input up to ``until`` (next offset per topic) through
    ``engine``, publishing nothing."""

    def __init__(self, p: int, engine: Engine, until: dict[str, int], reader: Any, decode: Decode,
                 detectors: list[str] | None = None) -> None:
        self.p = p
        self.engine = engine
        self.until = {topic: offset for topic, offset in until.items() if offset > 0}
        #: the detectors being rebuilt (None: all of them, the whole engine)
        self.detectors = detectors
        self.reader = reader
        self.decode = decode
        self.replayed = 0
        self.oldest_ts: float | None = None
        self.started = time.monotonic()
        self._tps = [TopicPartition(topic, p) for topic in self.until]
        self._merger = Merger(list(self.until), 0.0, lag=self._lag)
        if self._tps:
            reader.assign(self._tps)
            reader.seek_to_beginning(*self._tps)
            begins = reader.beginning_offsets(self._tps)
            self._skipped = sum(begins[tp] for tp in self._tps)  # no longer retained
        else:
            self._skipped = 0

    def _lag(self, topic: str, partition: int) -> int:
        tp = TopicPartition(topic, partition)
        return max(0, self.until[topic] - self.reader.position(tp))

    def done(self) -> bool:
        return all(self.reader.position(tp) >= self.until[tp.topic] for tp in self._tps) and not len(self._merger)

    def step(self, deadline: float) -> bool:
        """Replay until ``deadline`` (``time.perf_counter``); True once everything up to ``until`` is."""
        while not self.done():
            batch = self.reader.poll(timeout_ms=200, max_records=5000)
            for tp, records in batch.items():
                wanted = [r for r in records if r.offset < self.until[tp.topic]]
                if wanted:
                    self._merger.extend(tp.topic, tp.partition, self.decode(wanted, tp.topic, tp.partition))
            self._replay(self._merger.release(time.monotonic(), drain=self._fetched()))
            if time.perf_counter() >= deadline:
                break
        if self.done():
            self.reader.close()
            log.info("state rebuilt from history partition=%d events=%d oldest_event_ts=%s not_retained=%d "
                     "detectors=%s seconds=%.1f", self.p, self.replayed, self.oldest_ts, self._skipped,
                     ",".join(self.detectors) if self.detectors is not None else "all",
                     time.monotonic() - self.started)
            return True
        return False

    def _fetched(self) -> bool:
        return all(self.reader.position(tp) >= self.until[tp.topic] for tp in self._tps)

    def _replay(self, items: list[Item]) -> None:
        process = self.engine.process
        for item in items:
            event = item.payload
            if isinstance(event, BadRecord):
                continue  # dead-lettered when it was first read
            if self.oldest_ts is None:
                self.oldest_ts = event.ts
            try:
                process(event)  # its alerts were raised when the event was first read
            except Exception:  # the live loop dead-lettered it then; here it is skipped
                continue
            self.replayed += 1

    def cancel(self) -> None:
        self.reader.close()
