"""The service loop's own cost per event, without a broker: "what does the pipeline add to the engine?".

``python -m stream.bench_loop events.jsonl [--limit N] [--partitions P] [--profile]`` feeds the file
through the real :meth:`~stream.service.Service.poll_once` (decode, merge, engine per partition,
alerts, dead letters, checkpoint, metrics) with an in-memory consumer and producer and an injected
clock that advances 10 ms per poll, so every output is deterministic. It prints µs/event for the
loop (and the part of it spent in the garbage collector), for decode alone and for the engines
alone (same records, same partitions), the loop's overhead (loop − decode − engine), and a SHA-256
of every output (records produced, offsets committed, metric values except timings): a speed change
to the loop must leave it unchanged.
Times are the process's CPU time (less disturbed by other load on a shared machine than wall time).
Every run is under the service's garbage-collector settings (:mod:`stream.gctune`), unless
``--default-gc``; ``--profile`` prints cProfile's top entries by own time for the loop run.
``--per-detector`` adds what each detector costs the engines when it runs alone, and what the
whole suite costs beyond their sum (:func:`detector_costs`): the profile to start from before making
a detector faster.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import hashlib
import io
import pstats
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, NamedTuple

import orjson
from kafka import TopicPartition
from kafka.partitioner.default import murmur2
from prometheus_client import CollectorRegistry, generate_latest

from detectors.engine import Engine, EngineConfig
from detectors.events import Event
from detectors.registry import REGISTRY
from stream.decode import decode
from stream.errors import BadRecord
from stream.gctune import loop_gc
from stream.metrics import Metrics
from stream.service import Service
from stream.settings import Settings

#: Wall-clock seconds the injected clock advances per poll (the merger's wait is counted in these).
POLL_STEP_S = 0.01
#: Metrics whose values are timings, left out of the output digest (as are ``*_created`` stamps).
TIMED = (b"privwatch_batch_duration_seconds",)


class Record(NamedTuple):
    """What the loop reads of a kafka-python ``ConsumerRecord``."""

    value: bytes
    key: bytes | None
    offset: int


def _key(line: bytes) -> bytes | None:
    try:
        doc = orjson.loads(line)
        who = doc["principal"] if doc.get("type") == "access" else doc["target"]
        return str(who["id"]).encode()
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None


class FakeConsumer:
    """Hands out the file in order, ``max_records`` per poll, grouped by topic-partition like kafka-python."""

    def __init__(self, lines: list[bytes], topics: list[str], partitions: int) -> None:
        self.logs: dict[TopicPartition, list[Record]] = defaultdict(list)
        self.order: list[TopicPartition] = []
        for line in lines:
            key = _key(line)
            topic = topics[0] if b'"type":"permission"' not in line[:40] else topics[1]
            tp = TopicPartition(topic, (murmur2(key) & 0x7FFFFFFF) % partitions if key else 0)
            self.logs[tp].append(Record(line, key, len(self.logs[tp])))
            self.order.append(tp)
        self.cursor = 0
        self.positions: dict[TopicPartition, int] = defaultdict(int)
        self.committed: list[Any] = []

    def poll(self, timeout_ms: int = 0, max_records: int = 500) -> dict[TopicPartition, list[Record]]:
        batch: dict[TopicPartition, list[Record]] = {}
        for tp in self.order[self.cursor:self.cursor + max_records]:
            batch.setdefault(tp, []).append(self.logs[tp][self.positions[tp]])
            self.positions[tp] += 1
        self.cursor += max_records
        return batch

    def done(self) -> bool:
        return self.cursor >= len(self.order)

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


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[Any] = []

    def send(self, topic: str, key: bytes | None = None, value: bytes | None = None, headers: Any = None) -> None:
        self.sent.append((topic, key, value, headers))

    def flush(self, timeout: float | None = None) -> None:
        pass


class GcTimer:
    """Time spent in the cyclic garbage collector while active (a gc callback)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started

    def __enter__(self) -> GcTimer:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self)


class Clock:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def consume_all(service: Service, consumer: FakeConsumer, clock: Clock) -> None:
    """Run ``service``'s loop until ``consumer`` has handed out every record and the merger holds none,
    the clock moving :data:`POLL_STEP_S` a poll; then handle what is left."""
    while not consumer.done() or len(service.merger):
        service.poll_once()
        clock.now += POLL_STEP_S
    service.handle_items(drain=True)


def run_loop(lines: list[bytes], partitions: int, profile: cProfile.Profile | None = None) -> dict[str, Any]:
    """The real service loop over ``lines``; returns its µs/event and the digest of its outputs."""
    settings = Settings(metrics_port=0)
    registry = CollectorRegistry()
    clock = Clock(4.0e9)
    service = Service(settings, Metrics(registry, REGISTRY), clock=clock)
    consumer = FakeConsumer(lines, service.inputs, partitions)
    producer = FakeProducer()
    service.consumer, service.producer = consumer, producer
    started = time.process_time()
    if profile is not None:
        profile.enable()
    with GcTimer() as in_gc:
        consume_all(service, consumer, clock)
        service.commit()
    if profile is not None:
        profile.disable()
    took = time.process_time() - started
    exposed = generate_latest(registry).splitlines()
    metrics = b"\n".join(sorted(  # sorted: a metric's children come in set order
        line for line in exposed if not line.startswith((*TIMED, b"#")) and b"_created" not in line))
    h = hashlib.sha256()
    for doc in (producer.sent, consumer.committed):
        h.update(repr(doc).encode())
    h.update(metrics)
    return {"us_per_event": round(1e6 * took / len(lines), 2),
            "gc_us_per_event": round(1e6 * in_gc.seconds / len(lines), 2), "handled": service.handled_total,
            "produced": len(producer.sent), "outputs_sha256": h.hexdigest()}


def _decoded(lines: list[bytes], partitions: int) -> tuple[list[tuple[int, Event]], float]:
    """The file's events with their partitions, in file order, and the CPU seconds decoding took.

    The time is a second pass that keeps nothing, as the service keeps an event only until the engine
    has seen it. The first pass, which keeps every event, takes fresh memory from the kernel as it goes
    (about 33k page faults per 200k events), and that cost 1.4 µs per event more.
    """
    consumer = FakeConsumer(lines, ["a", "p"], partitions)
    records = [(tp.partition, consumer.logs[tp][i]) for tp, i in _file_positions(consumer)]
    events = []
    for partition, record in records:
        with contextlib.suppress(BadRecord):
            events.append((partition, decode(record.value, 4.0e9)))
    started = time.process_time()
    for _, record in records:
        with contextlib.suppress(BadRecord):  # bad records cost their decode only
            decode(record.value, 4.0e9)
    return events, time.process_time() - started


def _engine_seconds(events: list[tuple[int, Event]], partitions: int, detectors: list[str] | None = None) -> float:
    """CPU seconds of fresh engines (one per partition; ``detectors``: None for the default suite)
    processing ``events``."""
    engines = {p: Engine(EngineConfig(detectors=detectors)) for p in range(partitions)}
    started = time.process_time()
    for partition, event in events:
        engines[partition].process(event, detected_at=4.0e9)
    return time.process_time() - started


def run_parts(lines: list[bytes], partitions: int) -> dict[str, float]:
    """Decode alone, then the engines alone (one per partition, file order), in µs/event."""
    events, decode_s = _decoded(lines, partitions)
    engine_s = _engine_seconds(events, partitions)
    return {"decode_us": round(1e6 * decode_s / len(lines), 2), "engine_us": round(1e6 * engine_s / len(lines), 2)}


def detector_costs(lines: list[bytes], partitions: int, rounds: int = 3) -> dict[str, Any]:
    """What each detector costs the engines, in µs/event: engines running that detector alone,
    less engines running none; also the whole suite, and what it costs beyond the sum of its parts
    (``shared_us``: the detectors' state competing for the same caches, the drift detector's damping).

    Every variant runs once per round, in turn, and its fastest round counts. Back-to-back runs
    vary by several percent on a shared machine: a detector's cost measured alone varies by hundredths
    of a µs, where its cost measured as the suite with and without it varied by a whole µs.
    """
    events, _ = _decoded(lines, partitions)
    names = list(REGISTRY)
    variants: dict[str, list[str] | None] = {"all": None, "none": [], **{name: [name] for name in names}}
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(rounds):
        for key, detectors in variants.items():
            best[key] = min(best[key], _engine_seconds(events, partitions, detectors))
    us = {key: 1e6 * seconds / len(lines) for key, seconds in best.items()}
    alone = {name: us[name] - us["none"] for name in names}
    return {"engine_us": round(us["all"], 2), "no_detectors_us": round(us["none"], 2),
            "alone_us": {name: round(cost, 2) for name, cost in alone.items()},
            "shared_us": round(us["all"] - us["none"] - sum(alone.values()), 2)}


def measure(lines: list[bytes], partitions: int, profile: cProfile.Profile | None = None,
            collector: contextlib.AbstractContextManager[Any] | None = None) -> dict[str, Any]:
    """Decode alone, the engines alone, then the whole service loop over ``lines`` in memory, under the
    loop's collector settings (``collector`` instead, when given): µs per event of each, and what the
    loop spends beyond decoding and the engines."""
    with collector if collector is not None else loop_gc():
        result: dict[str, Any] = {"events": len(lines), **run_parts(lines, partitions),
                                  **run_loop(lines, partitions, profile)}
    result["loop_overhead_us"] = round(result["us_per_event"] - result["decode_us"] - result["engine_us"], 2)
    return result


def _file_positions(consumer: FakeConsumer) -> list[tuple[TopicPartition, int]]:
    seen: dict[TopicPartition, int] = defaultdict(int)
    out = []
    for tp in consumer.order:
        out.append((tp, seen[tp]))
        seen[tp] += 1
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m stream.bench_loop", description=__doc__.split("\n")[0])
    p.add_argument("events", type=Path, help="JSONL file of contract events (e.g. privwatch simulate output)")
    p.add_argument("--limit", type=int, default=100_000, help="first N lines (default 100k)")
    p.add_argument("--partitions", type=int, default=3)
    p.add_argument("--profile", action="store_true", help="print cProfile's top entries (own time) of the loop")
    p.add_argument("--top", type=int, default=30)
    p.add_argument("--per-detector", action="store_true",
                   help="also what each detector costs the engines alone, and the suite beyond their sum")
    p.add_argument("--default-gc", action="store_true", help="CPython's collector thresholds, as before stream.gctune")
    args = p.parse_args(argv)
    with args.events.open("rb") as fh:
        lines = [line.rstrip(b"\n") for _, line in zip(range(args.limit), fh, strict=False)]
    prof = cProfile.Profile() if args.profile else None

    def collector() -> contextlib.AbstractContextManager[Any]:  # a fresh one per use (loop_gc's is single-use)
        return contextlib.nullcontext() if args.default_gc else loop_gc()

    result = measure(lines, args.partitions, prof, collector())
    if args.per_detector:  # under the same collector settings as the rest
        with collector():
            result["detectors"] = detector_costs(lines, args.partitions)
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    if prof is not None:
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(args.top)
        print(out.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
