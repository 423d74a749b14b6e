"""Outputs are acknowledged before offsets are committed: refused sends stop consumption (unit tests,
no broker; the real broker's refusals are in test_delivery_kafka.py)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from factories import lines, routine_then_bulk

from stream.errors import OutputsUnsent
from stream.kafka.deadletter import DeadLetter, dead_letter_output
from stream.kafka.outputs import Output, Outputs
from stream.testing import FakeProducer, in_memory


class Future:
    def __init__(self, error: BaseException | None) -> None:
        self.is_done = True
        self.exception = error

    def succeeded(self) -> bool:
        return self.exception is None


class Refusing(FakeProducer):
    """A broker that refuses records of ``refuse`` (or larger than ``max_bytes``) until told otherwise."""

    def __init__(self, refuse: set[str] | None = None, max_bytes: int | None = None) -> None:
        super().__init__()
        self.refuse = refuse or set()
        self.max_bytes = max_bytes
        self.attempts = 0

    def send(self, topic: str, key: bytes | None = None, value: bytes | None = None, headers: Any = None) -> Any:
        from kafka.errors import MessageSizeTooLargeError, NotLeaderForPartitionError

        self.attempts += 1
        if topic in self.refuse:
            return Future(NotLeaderForPartitionError())
        if self.max_bytes is not None and len(value or b"") > self.max_bytes:
            return Future(MessageSizeTooLargeError())
        super().send(topic, key, value, headers)
        return Future(None)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_refused_record_is_held_retried_with_backoff_and_counted() -> None:
    producer, clock, failures = Refusing({"alerts"}), Clock(), []
    outputs = Outputs(producer, on_failure=failures.append, clock=clock)
    outputs.send(Output("alerts", b"k1", b"v1"))
    with pytest.raises(OutputsUnsent, match="NotLeaderForPartition"):
        outputs.flush()
    outputs.send(Output("alerts", b"k2", b"v2"))  # held behind the refused one, not sent
    assert outputs.stalled and producer.attempts == 1 and failures == ["alerts"]
    assert not outputs.retry()  # its backoff (0.5 s) is not over
    clock.now = 0.6
    assert not outputs.retry() and producer.attempts == 3  # both tried again, refused again
    producer.refuse.clear()
    clock.now = 1.0
    assert not outputs.retry()  # the second delay is 1 s
    clock.now = 1.7
    assert outputs.retry() and not outputs.stalled
    assert [sent[1] for sent in producer.sent] == [b"k1", b"k2"] and outputs.acked == {"alerts": 2}


def test_a_dead_letter_too_large_for_the_topic_is_cut_with_its_original_size() -> None:
    producer = Refusing(max_bytes=3000)
    outputs = Outputs(producer)
    letter = DeadLetter(b"x" * 100_000, b"key", "too_large", "big", "in", 1, 9)
    outputs.send(dead_letter_output("dead", letter))
    outputs.flush()
    [(topic, key, value, headers)] = producer.sent
    assert topic == "dead" and key == b"key" and value == b"x" * len(value) and len(value) <= 3000
    assert dict(headers)["privwatch.truncated"] == b"true"
    assert dict(headers)["privwatch.original.size"] == b"100000"
    assert outputs.acked == {"dead": 1}


def test_the_service_stops_consuming_and_commits_nothing_while_an_alert_is_refused() -> None:
    docs = routine_then_bulk("u-1", days=4) + routine_then_bulk("u-2", days=4)
    service, harness = in_memory(lines(docs), partitions=2)
    producer = Refusing({service.settings.alerts_topic})
    harness.producer = producer
    service.attach(harness.consumer, producer)
    service.health.ready = True
    while not harness.consumer.done() or len(service.merger):
        service.poll_once()
        harness.clock.now += 0.01
        if service.outputs is not None and service.outputs.stalled:
            break
    service.commit()
    service.poll_once()
    assert service.outputs is not None and service.outputs.stalled
    assert harness.consumer.committed == [] and harness.consumer.paused
    assert not service.health.is_ready() and "outputs not acknowledged" in str(service.health.blocked)
    registry = harness.registry
    topic = service.settings.alerts_topic
    assert registry.get_sample_value("privwatch_produce_failures_total", {"topic": topic}) >= 1
    assert registry.get_sample_value("privwatch_ready") == 0.0
    polled = harness.consumer.cursor
    for _ in range(5):
        service.poll_once()
    assert harness.consumer.cursor == polled  # nothing more is read while stalled
    producer.refuse.clear()
    service.outputs.retry_at = 0.0
    service.poll_once()
    while not harness.consumer.done() or len(service.merger):
        service.poll_once()
        harness.clock.now += 0.01
    service.handle_items(drain=True)
    service.commit()
    assert service.health.blocked is None and not harness.consumer.paused
    alerts = [orjson.loads(value) for t, _, value, _ in producer.sent if t == topic]
    assert registry.get_sample_value("privwatch_records_produced_total", {"topic": topic}) == len(alerts) > 0
    handled = sum(offset for _, _, offset in harness.consumer.committed[-1])
    assert handled == len(docs)
