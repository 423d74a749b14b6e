"""The in-memory harness: the real service loop with no broker, shared by the tests, the bench
(:mod:`stream.bench.loop`) and the native build's training run (``dev/native/train.py``).

:class:`FakeConsumer` hands out a file of contract events as kafka-python would (partitioned by
the producer's murmur2 of the key, grouped by topic-partition per poll); :class:`FakeProducer`
keeps what is sent; :class:`Clock` is the injected wall clock, moved :data:`POLL_STEP_S` a poll by
:func:`consume_all`, so every output is deterministic and :func:`outputs_digest` can vouch for it.

>>> import orjson
>>> from stream.contract import SCHEMA_DIR
>>> event = (SCHEMA_DIR / "examples" / "access-event.json").read_bytes()
>>> service, harness = in_memory([orjson.dumps(orjson.loads(event))], partitions=2)
>>> harness.run(service)
>>> service.handled_total
1
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson
from kafka import TopicPartition
from kafka.partitioner.default import murmur2
from prometheus_client import CollectorRegistry, generate_latest

from detectors.registry import REGISTRY
from stream.ops.metrics import Metrics
from stream.settings import Settings

if TYPE_CHECKING:
    from stream.service.service import Service

#: Wall-clock seconds the injected clock advances per poll (the merger's wait is counted in these).
POLL_STEP_S = 0.01
#: Where the injected clock starts (2096: far after any simulated event, which is never "ahead").
CLOCK_START = 4.0e9
#: Metrics whose values are timings, left out of the output digest (as are ``*_created`` stamps).
TIMED = (b"privwatch_batch_duration_seconds", b"process_")


class Record(NamedTuple):
    """What the loop reads of a kafka-python ``ConsumerRecord``."""

    value: bytes
    key: bytes | None
    offset: int


def record_key(line: bytes) -> bytes | None:
    """The key a contract producer gives an input event: ``principal.id`` (access) or ``target.id``
    (permission); None for a record that is not one."""
    try:
        doc = orjson.loads(line)
        who = doc["target"] if doc.get("type") == "permission" else doc["principal"]
        return str(who["id"]).encode()
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None


def partition_for(key: bytes | None, partitions: int) -> int:
    """The partition kafka-python's default partitioner gives ``key`` (0 for no key)."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions if key else 0


class FakeConsumer:
    """Hands out the file in order, ``max_records`` per poll, grouped by topic-partition like kafka-python."""

    def __init__(self, lines: list[bytes], topics: list[str], partitions: int) -> None:
        self.logs: dict[TopicPartition, list[Record]] = defaultdict(list)
        self.order: list[TopicPartition] = []
        for line in lines:
            key = record_key(line)
            topic = topics[0]
            if b'"type":"permission"' in line[:40]:
                topic = topics[1]
            elif b'"type":"authentication"' in line[:40] and len(topics) > 2:
                topic = topics[2]
            tp = TopicPartition(topic, partition_for(key, partitions))
            self.logs[tp].append(Record(line, key, len(self.logs[tp])))
            self.order.append(tp)
        self.cursor = 0
        self.positions: dict[TopicPartition, int] = defaultdict(int)
        self.committed: list[Any] = []
        self.paused: set[TopicPartition] = set()

    def pause(self, *tps: TopicPartition) -> None:
        self.paused.update(tps)

    def resume(self, *tps: TopicPartition) -> None:
        self.paused.difference_update(tps)

    def poll(self, timeout_ms: int = 0, max_records: int = 500) -> dict[TopicPartition, list[Record]]:
        batch: dict[TopicPartition, list[Record]] = {}
        if self.paused:  # the file's order is one sequence: any pause holds all of it
            return batch
        for tp in self.order[self.cursor:self.cursor + max_records]:
            batch.setdefault(tp, []).append(self.logs[tp][self.positions[tp]])
            self.positions[tp] += 1
        self.cursor += max_records
        return batch

    def done(self) -> bool:
        return self.cursor >= len(self.order)

    def file_order(self) -> list[tuple[TopicPartition, Record]]:
        """Every record with its topic-partition, in the file's order."""
        seen: dict[TopicPartition, int] = defaultdict(int)
        out = []
        for tp in self.order:
            out.append((tp, self.logs[tp][seen[tp]]))
            seen[tp] += 1
        return out

    def highwater(self, tp: TopicPartition) -> int:
        return len(self.logs[tp])

    def position(self, tp: TopicPartition, timeout_ms: int = 0) -> int:
        return self.positions[tp]

    def assignment(self) -> set[TopicPartition]:
        return set(self.logs)

    def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: len(self.logs[tp]) for tp in tps}

    def commit(self, offsets: Any) -> None:
        self.committed.append(sorted((tp.topic, tp.partition, om.offset) for tp, om in offsets.items()))

    def seek(self, tp: TopicPartition, offset: int) -> None:
        """A restore seeks to where the state resumes: here every partition restores before the first
        poll, from the start, so this only checks that."""
        assert offset == self.positions[tp], "the in-memory consumer reads from the start only"


class Acked:
    """The future of a send the fake broker took at once."""

    is_done = True
    exception = None

    def succeeded(self) -> bool:
        return True


class FakeProducer:
    """Keeps every record sent, in order; every send is acknowledged at once."""

    def __init__(self) -> None:
        self.sent: list[Any] = []

    def send(self, topic: str, key: bytes | None = None, value: bytes | None = None, headers: Any = None) -> Acked:
        self.sent.append((topic, key, value, headers))
        return Acked()

    def flush(self, timeout: float | None = None) -> None:
        pass


class MemoryTopic:
    """A topic in memory: an append-only log per partition, with a producer's ``send`` and readers
    (:meth:`reader`) that assign, seek and poll as kafka-python's do. What the state store uses of the
    clients: the state tests and ``python -m stream.bench.state`` run it without a broker."""

    def __init__(self, name: str = "state", partitions: int = 3) -> None:
        self.name = name
        self.logs: dict[int, list[Record]] = {p: [] for p in range(partitions)}

    def send(self, topic: str, key: bytes | None = None, value: bytes | None = None, partition: int = 0) -> Acked:
        log = self.logs[partition]
        log.append(Record(value, key, len(log)))  # type: ignore[arg-type]  # None: a tombstone
        return Acked()

    def partitions_for(self, topic: str) -> set[int]:
        return set(self.logs)

    def flush(self, timeout: float | None = None) -> None:
        pass

    def reader(self) -> MemoryReader:
        return MemoryReader(self)

    def latest(self, partition: int) -> dict[bytes | None, bytes | None]:
        """Each key's latest value, as compaction keeps it (None: a tombstone)."""
        return {r.key: r.value for r in self.logs[partition]}


class MemoryReader:
    """A consumer of a :class:`MemoryTopic`, assigned one partition."""

    def __init__(self, topic: MemoryTopic, max_records: int = 500) -> None:
        self.t = topic
        self.pos = 0
        self.tp: TopicPartition | None = None
        self.max_records = max_records

    def topics(self) -> set[str]:
        return {self.t.name}

    def partitions_for_topic(self, name: str) -> set[int] | None:
        return set(self.t.logs) if name == self.t.name else None

    def assign(self, tps: list[TopicPartition]) -> None:
        self.tp = tps[0]

    def seek_to_beginning(self, tp: TopicPartition) -> None:
        self.pos = 0

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.pos = offset

    def beginning_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: 0 for tp in tps}

    def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: len(self.t.logs[tp.partition]) for tp in tps}

    def position(self, tp: TopicPartition) -> int:
        return self.pos

    def poll(self, timeout_ms: int = 0) -> dict[TopicPartition, list[Record]]:
        assert self.tp is not None
        records = self.t.logs[self.tp.partition][self.pos:self.pos + self.max_records]
        self.pos += len(records)
        return {self.tp: records}

    def close(self) -> None:
        pass


class Clock:
    """The injected wall clock: reads ``now``, which the harness moves."""

    def __init__(self, start: float = CLOCK_START) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@dataclass
class Harness:
    """The fakes a service runs on in memory, and its metrics registry."""

    consumer: FakeConsumer
    producer: FakeProducer = field(default_factory=FakeProducer)
    clock: Clock = field(default_factory=Clock)
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def run(self, service: Service) -> None:
        """Consume everything (:func:`consume_all`), then commit."""
        consume_all(service, self.consumer, self.clock)
        service.commit()

    def digest(self) -> str:
        """SHA-256 of every output: records produced, offsets committed, and metric values other than
        timings. A change that only makes the loop faster must leave it unchanged."""
        exposed = generate_latest(self.registry).splitlines()
        metrics = b"\n".join(sorted(  # sorted: a metric's children come in set order
            line for line in exposed if not line.startswith((*TIMED, b"#")) and b"_created" not in line))
        h = hashlib.sha256()
        for doc in (self.producer.sent, self.consumer.committed):
            h.update(repr(doc).encode())
        h.update(metrics)
        return h.hexdigest()


def in_memory(lines: list[bytes], partitions: int, settings: Settings | None = None,
              harness: Harness | None = None) -> tuple[Service, Harness]:
    """The real service over ``lines`` split into ``partitions``, on fakes (``harness``'s, when given),
    with no durable state."""
    from stream.service.service import Service

    settings = settings or Settings(metrics_port=0)
    topics = [settings.access_topic, settings.permission_topic, settings.authentication_topic]
    harness = harness or Harness(FakeConsumer(lines, topics, partitions))
    service = Service(settings, Metrics(harness.registry, REGISTRY), clock=harness.clock)
    service.attach(harness.consumer, harness.producer)
    return service, harness


def consume_all(service: Service, consumer: FakeConsumer, clock: Clock) -> None:
    """Run ``service``'s loop until ``consumer`` has handed out every record and the merger holds none,
    the clock moving :data:`POLL_STEP_S` a poll; then handle what is left."""
    while not consumer.done() or len(service.merger):
        service.poll_once()
        clock.now += POLL_STEP_S
    service.handle_items(drain=True)
