"""Where simulated events go: JSONL files (events, labels, meta) or the two Kafka input topics."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from stream.errors import PrivwatchError

ACCESS_TOPIC = "privwatch.access-events"
PERMISSION_TOPIC = "privwatch.permission-events"


def write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> int:
    """Write one compact JSON object per line; return the number of lines."""
    n = 0
    dumps = orjson.dumps
    with path.open("wb", buffering=1 << 20) as fh:
        for rec in records:
            fh.write(dumps(rec))
            fh.write(b"\n")
            n += 1
    return n


def meta(seed: int, principals: int, days: int, start: str, baseline_days: int,
         events: list[dict[str, Any]], labels: list[dict[str, Any]],
         world: dict[str, Any] | None = None) -> dict[str, Any]:
    """Summary written to ``meta.json``: the arguments and what came out (and a random world's shape)."""
    kinds = Counter(f"{lab['label']}:{lab['kind']}" for lab in labels)
    extra = {"world": world} if world is not None else {}
    return {**extra, "seed": seed, "principals": principals, "days": days, "start": f"{start}T00:00:00Z",
            "baseline_days": baseline_days,
            "counts": {"events": len(events),
                       "access_events": sum(1 for e in events if e["type"] == "access"),
                       "permission_events": sum(1 for e in events if e["type"] == "permission"),
                       "incidents": sum(1 for lab in labels if lab["label"] == "incident"),
                       "benign_shifts": sum(1 for lab in labels if lab["label"] == "benign"),
                       "labels_by_kind": dict(sorted(kinds.items()))}}


def write_outputs(out_dir: Path, events: list[dict[str, Any]] | None, labels: list[dict[str, Any]],
                  info: dict[str, Any]) -> None:
    """``events.jsonl`` (unless ``events`` is None), ``labels.jsonl`` and ``meta.json`` in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if events is not None:
        write_jsonl(out_dir / "events.jsonl", events)
    write_jsonl(out_dir / "labels.jsonl", labels)
    (out_dir / "meta.json").write_bytes(orjson.dumps(info, option=orjson.OPT_INDENT_2) + b"\n")


def event_key(event: dict[str, Any]) -> bytes:
    """Kafka key: ``principal.id`` for access events, ``target.id`` for permission events."""
    who = event["principal"] if event["type"] == "access" else event["target"]
    return str(who["id"]).encode()


def _event_seconds(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(event["ts"]).timestamp()


class Pacer:
    """Sleeps so that event time advances ``speedup`` times faster than the wall clock (0: no pacing)."""

    def __init__(self, speedup: float, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.speedup = speedup
        self.sleep = sleep
        self.clock = clock
        self._origin: tuple[float, float] | None = None

    def wait(self, event: dict[str, Any]) -> None:
        if self.speedup <= 0:
            return
        t = _event_seconds(event)
        if self._origin is None:
            self._origin = (t, self.clock())
            return
        due = self._origin[1] + (t - self._origin[0]) / self.speedup
        ahead = due - self.clock()
        if ahead > 0:
            self.sleep(ahead)


def produce_to_kafka(events_iter: Iterable[dict[str, Any]], bootstrap: str,
                     access_topic: str = ACCESS_TOPIC, permission_topic: str = PERMISSION_TOPIC,
                     speedup: float = 0.0, on_progress: Callable[[int], None] | None = None,
                     **producer_config: Any) -> int:
    """Send events to their topic keyed like the contract says, paced by event time / ``speedup``.

    Returns the number of events sent; ``on_progress(n)`` is called every 10,000 events and at the end.
    Extra keyword arguments go to :class:`kafka.KafkaProducer` (e.g. security settings).
    """
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, **producer_config)
    pacer = Pacer(speedup)
    failed: list[Exception] = []
    n = 0
    try:
        for event in events_iter:
            pacer.wait(event)
            topic = access_topic if event["type"] == "access" else permission_topic
            producer.send(topic, key=event_key(event), value=orjson.dumps(event)).add_errback(failed.append)
            n += 1
            if on_progress is not None and n % 10_000 == 0:
                on_progress(n)
        producer.flush()
    finally:
        producer.close()
    if failed:
        raise PrivwatchError(f"{len(failed)} of {n} events were not delivered, first error: {failed[0]!r}")
    if on_progress is not None:
        on_progress(n)
    return n
