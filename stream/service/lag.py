"""What the service has still to read: per topic-partition for the event-time merge (no I/O), as the
``privwatch_consumer_lag`` metric (every :data:`EVERY_S`), and whether it has caught up."""

from __future__ import annotations

from typing import Any

from kafka import TopicPartition
from kafka.errors import KafkaError

from stream.kafka import clients
from stream.ops.metrics import Metrics
from stream.service.checkpoint import Checkpoint

#: how often the consumer-lag metric is refreshed (it asks the brokers for end offsets)
EVERY_S = 5.0


class Lag:
    """Reads the consumer's positions and high watermarks; ``ends`` are the end offsets read when each
    partition was restored (:class:`~stream.service.ownership.PartitionOwnership`), what is known of
    a partition before its first fetch."""

    def __init__(self, consumer: Any, checkpoint: Checkpoint, metrics: Metrics, ends: dict[TopicPartition, int]):
        self.consumer = consumer
        self.checkpoint = checkpoint
        self.metrics = metrics
        self.ends = ends

    def remaining(self, topic: str, partition: int) -> int | None:
        """Records a topic-partition has still to fetch, as of its last fetch's high watermark (no I/O),
        or before its first fetch as of the end offset read when the partition was restored; None when
        neither is known. Records fetched but not yet returned by ``poll`` count too."""
        tp = TopicPartition(topic, partition)
        highwater = self.consumer.highwater(tp)
        if highwater is None:
            highwater = self.ends.get(tp)
        return None if highwater is None else max(0, highwater - self.consumer.position(tp))

    def caught_up(self) -> bool:
        """True when every owned partition is read up to its log end (what is read may still be buffered)."""
        return clients.read_to_end(self.consumer)

    def observe(self) -> None:
        """Set the consumer-lag metric of every owned partition from the brokers' end offsets."""
        owned = list(self.consumer.assignment())
        if not owned:
            return
        try:
            ends = self.consumer.end_offsets(owned)
        except KafkaError:
            return
        for tp in owned:
            position = self.checkpoint.handled.get(tp, -1) + 1
            self.metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(max(0, ends.get(tp, 0) - position))
