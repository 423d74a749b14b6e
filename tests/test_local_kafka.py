"""Integration tests of the project's local Kafka (dev/kafka/broker.py) and the test fixtures."""

from __future__ import annotations

import time

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka_fixtures import local_kafka

pytestmark = pytest.mark.integration

N_RECORDS = 100


def _produce(bootstrap: str, topic: str, n: int, start: int = 0) -> None:
    """Produce ``n`` keyed records ``{i}`` to ``topic`` and wait for all acks."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    try:
        futures = [
            producer.send(topic, key=f"k{i % 7}".encode(), value=str(i).encode())
            for i in range(start, start + n)
        ]
        producer.flush(timeout=30)
        for fut in futures:
            fut.get(timeout=30)
    finally:
        producer.close(timeout=10)


def _consumer(bootstrap: str, topic: str, group: str | None) -> KafkaConsumer:
    """Return a manual-commit consumer subscribed to ``topic`` reading from the earliest offset."""
    return KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        consumer_timeout_ms=1000,
    )


def _consume(consumer: KafkaConsumer, n: int, timeout_s: float = 30.0) -> list[int]:
    """Poll until ``n`` records arrived (or the timeout) and return their integer values."""
    values: list[int] = []
    deadline = time.monotonic() + timeout_s
    while len(values) < n and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            values.extend(int(r.value) for r in records)
    return values


def test_broker_answers_protocol_probe(kafka_broker):
    host, port = kafka_broker.bootstrap.rsplit(":", 1)
    assert local_kafka.probe(host, int(port))


def test_fresh_topics_are_created_with_partitions_and_compaction(kafka_bootstrap, fresh_topics):
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

    topics = fresh_topics(n_partitions=3)
    assert set(topics) == {"access", "permission", "alerts", "dead-letter", "feedback", "state", "commons"}
    assert len(set(topics.values())) == 7
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        described = {t.get("topic") or t.get("name"): t for t in admin.describe_topics(list(topics.values()))}
        assert all(len(described[name]["partitions"]) == 3 for name in topics.values())
        for role in ("state", "commons"):
            cfg = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topics[role])])
            assert "'compact'" in repr(cfg), cfg
    finally:
        admin.close()


def test_produce_and_consume_with_manual_commit(kafka_bootstrap, fresh_topics, group_id):
    topic = fresh_topics(n_partitions=3, names=("events",))["events"]
    _produce(kafka_bootstrap, topic, N_RECORDS)

    consumer = _consumer(kafka_bootstrap, topic, group_id)
    try:
        values = _consume(consumer, N_RECORDS)
        assert sorted(values) == list(range(N_RECORDS))
        consumer.commit()
        parts = [TopicPartition(topic, p) for p in range(3)]
        committed = sum(consumer.committed(tp) or 0 for tp in parts)
        assert committed == N_RECORDS
    finally:
        consumer.close()

    # The same group resumes after the committed offsets: nothing is left to read.
    again = _consumer(kafka_bootstrap, topic, group_id)
    try:
        assert _consume(again, 1, timeout_s=3.0) == []
    finally:
        again.close()


def test_restart_keeps_data(kafka_broker, fresh_topics):
    topic = fresh_topics(n_partitions=2, names=("durable",))["durable"]
    _produce(kafka_broker.bootstrap, topic, 20)

    kafka_broker.restart()

    consumer = _consumer(kafka_broker.bootstrap, topic, group=None)
    try:
        assert sorted(_consume(consumer, 20)) == list(range(20))
    finally:
        consumer.close()


def test_kill_and_start_keeps_acknowledged_data(isolated_kafka):
    from kafka.admin import KafkaAdminClient, NewTopic

    topic = "pw-crash"
    admin = KafkaAdminClient(bootstrap_servers=isolated_kafka.bootstrap)
    try:
        admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        admin.close()
    _produce(isolated_kafka.bootstrap, topic, 10)

    isolated_kafka.kill()
    assert not isolated_kafka.running()
    isolated_kafka.start().wait_ready(90)

    consumer = _consumer(isolated_kafka.bootstrap, topic, group=None)
    try:
        assert sorted(_consume(consumer, 10)) == list(range(10))
    finally:
        consumer.close()
