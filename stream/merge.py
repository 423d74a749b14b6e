"""Event-time merge of a partition's two input topics, with a short, bounded wait.

Access and permission records of partition *p* are merged in event-time order, as replay sees them.
When one topic has nothing buffered, records of the other wait at most ``wait_s`` (wall clock) for
it before being released anyway, so a quiet topic never stalls the busy one. Each topic's records
stay in offset order, so what is released per topic-partition is always a prefix of what was read.
Runs compiled with the detectors (:mod:`detectors.native`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any


class Item:
    """One consumed record with its decoded event, or the BadRecord that refused it.

    A plain class, not a dataclass: compiled, a dataclass's constructor still ran the ``__init__``
    that the dataclasses module generates, in Python (about 2.2k instructions per record; this one,
    about 0.2k).
    """

    __slots__ = ("ts", "topic", "partition", "offset", "record", "payload", "arrived")

    def __init__(self, ts: float, topic: str, partition: int, offset: int, record: Any, payload: Any,
                 arrived: float) -> None:
        self.ts = ts
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.record = record
        self.payload = payload
        self.arrived = arrived


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
    >>> m = Merger(["a", "p"], wait_s=1.0, idle=lambda topic, partition: topic == "p")
    >>> m.add(Item(5.0, "a", 0, 1, None, None, arrived=0.0))
    >>> [i.offset for i in m.release(now=0.1)]  # "p" has nothing to fetch: no need to wait for it
    [1]
    """

    def __init__(self, topics: list[str], wait_s: float,
                 idle: Callable[[str, int], bool] | None = None) -> None:
        self.topics = topics
        self.wait_s = wait_s
        #: ``idle(topic, partition)``: that topic-partition has nothing more to fetch right now (its
        #: position is at the high watermark), so waiting for it is pointless (Kafka Streams does the same)
        self.idle = idle
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

    def _others_idle(self, partition: int, by_topic: dict[str, deque[Item]]) -> bool:
        idle = self.idle
        return idle is not None and all(idle(topic, partition) for topic, q in by_topic.items() if not q)

    def _release_partition(self, partition: int, by_topic: dict[str, deque[Item]], now: float, drain: bool,
                           out: list[Item]) -> None:
        append, wait_s = out.append, self.wait_s
        queues = list(by_topic.values())
        while True:
            heads = [q for q in queues if q]
            if not heads:
                return
            if len(heads) < len(queues):
                drain = drain or self._others_idle(partition, by_topic)
                # Only some topics have data: release while the oldest head has waited long enough.
                # (Arrival times only grow along a queue, so this stops at the first one too young.)
                while True:
                    first = heads[0] if len(heads) == 1 else min(heads, key=_head_ts)
                    if not drain:
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
