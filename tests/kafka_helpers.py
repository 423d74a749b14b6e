"""Producing and reading back test records on the real broker."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition


def produce(bootstrap: str, topic: str, values: Iterable[bytes | dict], key: Callable[[Any], bytes | None]) -> int:
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all")
    n = 0
    for value in values:
        raw = value if isinstance(value, bytes) else orjson.dumps(value)
        producer.send(topic, key=key(value), value=raw)
        n += 1
    producer.flush()
    producer.close()
    return n


def principal_key(value: bytes | dict) -> bytes | None:
    if isinstance(value, dict):
        who = value.get("principal") or value.get("target") or {}
        return str(who.get("id", "")).encode() or None
    return b"garbage"


def read_all(bootstrap: str, topic: str, expect: int | None = None, timeout_s: float = 30.0) -> list[Any]:
    """Every record of ``topic`` (waits for ``expect`` records when given)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                             auto_offset_reset="earliest", consumer_timeout_ms=1000)
    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    records: list[Any] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        batch = consumer.poll(timeout_ms=500)
        for recs in batch.values():
            records.extend(recs)
        ends = consumer.end_offsets(partitions)
        done = all(consumer.position(tp) >= ends[tp] for tp in partitions)
        if done and (expect is None or len(records) >= expect):
            break
    consumer.close()
    return records


def committed(bootstrap: str, group: str, topics: Iterable[str]) -> dict[tuple[str, int], int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    out = {}
    for topic in topics:
        for p in consumer.partitions_for_topic(topic) or []:
            out[(topic, p)] = consumer.committed(TopicPartition(topic, p)) or 0
    consumer.close()
    return out
