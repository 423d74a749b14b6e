"""Event-time merge of a partition's two input topics, waiting for the other topic as Kafka Streams does.

Access and permission records of partition *p* are merged in event-time order, as replay sees them.
When one topic has nothing buffered, records of the other wait for it as Kafka Streams' tasks do
(KIP-695): not at all when it is fetched to its end (nothing can come before them); until its records
come when it is known to have some still to fetch (a backlog: the wait is as long as catching up
takes, bounded by :data:`MAX_BEHIND_WAIT_S`); and at most ``wait_s`` (wall clock) when that is not
known, so that a quiet topic never stalls the busy one. Each topic's records stay in offset order,
so what is released per topic-partition is always a prefix of what was read.
Runs compiled with the detectors (:mod:`detectors.native`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Final

from stream.contract.decode import Item

#: The longest a partition's records wait for its other topic while that topic is known to have
#: records still to fetch (a safety bound: a partition that never delivers them stalls no longer)
MAX_BEHIND_WAIT_S: Final = 60.0


def _head_ts(queue: deque[Item]) -> float:
    return queue[0].ts


class Merger:
    """Buffers per (partition, topic) and releases in event-time order.

    >>> m = Merger(["a", "p"], wait_s=1.0)
    >>> m.add(Item(5.0, "a", 0, 0, None, None, arrived=0.0))
    >>> m.add(Item(3.0, "p", 0, 0, None, None, arrived=0.0))
    >>> [i.topic for i in m.release(now=0.1)]
    ['p']
    >>> [i.topic for i in m.release(now=2.0)], m.timed_out  # "a" waited its second for "p" in vain
    (['a'], 1)
    >>> lags = {"a": 5, "p": 0}
    >>> m = Merger(["a", "p"], wait_s=1.0, lag=lambda topic, partition: lags[topic])
    >>> m.add(Item(5.0, "a", 0, 1, None, None, arrived=0.0))
    >>> [i.offset for i in m.release(now=0.1)]  # "p" has nothing to fetch: no need to wait for it
    [1]
    >>> m.add(Item(9.0, "p", 0, 0, None, None, arrived=0.0))
    >>> m.release(now=30.0)  # "a" has 5 records to fetch, which may come before it: "p" waits for them
    []
    >>> m.add(Item(7.0, "a", 0, 2, None, None, arrived=30.0))
    >>> lags["a"] = 0
    >>> [(i.topic, i.ts) for i in m.release(now=30.1)], m.timed_out  # "a" caught up: in event-time order
    ([('a', 7.0), ('p', 9.0)], 0)
    """

    def __init__(self, topics: list[str], wait_s: float,
                 lag: Callable[[str, int], int | None] | None = None) -> None:
        self.topics = topics
        self.wait_s = wait_s
        #: ``lag(topic, partition)``: how many records that topic-partition has still to fetch (its high
        #: watermark less its position, as of the last fetch), or None when not known
        self.lag = lag
        self.queues: dict[int, dict[str, deque[Item]]] = {}
        #: items released because their wait ran out, the other topic of their partition still empty
        #: and not known to be fetched to its end (the caller reads and resets it: a metric)
        self.timed_out = 0

    def add(self, item: Item) -> None:
        self._queue(item.topic, item.partition).append(item)

    def extend(self, topic: str, partition: int, items: list[Item]) -> None:
        """Add records of one topic-partition, in offset order (what one poll returned for it)."""
        self._queue(topic, partition).extend(items)

    def _queue(self, topic: str, partition: int) -> deque[Item]:
        queues = self.queues.get(partition)
        if queues is None:
            queues = self.queues[partition] = {t: deque() for t in self.topics}
        return queues[topic]

    def __len__(self) -> int:
        return sum(len(q) for queues in self.queues.values() for q in queues.values())

    def release(self, now: float, drain: bool = False) -> list[Item]:
        """Every item that may go now (all of them when ``drain``), in release order."""
        out: list[Item] = []
        for partition, by_topic in self.queues.items():
            self._release_partition(partition, by_topic, now, drain, out)
        return out

    def _wait_for_others(self, partition: int, by_topic: dict[str, deque[Item]]) -> float:
        """How long the heads may wait for the partition's empty topics: 0 when all are fetched to their
        end, :data:`MAX_BEHIND_WAIT_S` when one has records still to fetch, else ``wait_s``."""
        lag = self.lag
        if lag is None:
            return self.wait_s
        lags = [lag(topic, partition) for topic, q in by_topic.items() if not q]
        if any(n is not None and n > 0 for n in lags):
            return MAX_BEHIND_WAIT_S
        return 0.0 if all(n is not None for n in lags) else self.wait_s

    def _release_partition(self, partition: int, by_topic: dict[str, deque[Item]], now: float, drain: bool,
                           out: list[Item]) -> None:
        append = out.append
        queues = list(by_topic.values())
        while True:
            heads = [q for q in queues if q]
            if not heads:
                return
            if len(heads) < len(queues):
                wait_s = 0.0 if drain else self._wait_for_others(partition, by_topic)
                # Only some topics have data: release while the oldest head has waited long enough.
                # (Arrival times only grow along a queue, so this stops at the first one too young.)
                while True:
                    first = heads[0] if len(heads) == 1 else min(heads, key=_head_ts)
                    if wait_s > 0.0:
                        if now - first[0].arrived < wait_s:
                            return
                        self.timed_out += 1
                    append(first.popleft())
                    if not first:
                        break
                continue
            if len(heads) == 2:  # both topics have data (the usual case): a plain two-way merge
                a, b = heads
                while a and b:
                    append(a.popleft() if a[0].ts <= b[0].ts else b.popleft())
                continue
            append(min(heads, key=_head_ts).popleft())

    def drop(self, partitions: set[int]) -> None:
        """Forget buffered records of revoked partitions (they were not handled, so not committed)."""
        for p in partitions:
            self.queues.pop(p, None)
