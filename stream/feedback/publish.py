"""Publishing verdict records to the feedback topic, keyed by verdict id, acknowledged before returning."""

from __future__ import annotations

from typing import Any

import orjson


class FeedbackPublisher:
    """``publisher(record)`` sends one signed record and waits until the brokers have it."""

    def __init__(self, producer: Any, topic: str, timeout_s: float = 10.0) -> None:
        self.producer = producer
        self.topic = topic
        self.timeout_s = timeout_s

    def __call__(self, record: dict[str, Any]) -> None:
        future = self.producer.send(self.topic, key=str(record["verdict_id"]).encode(), value=orjson.dumps(record))
        future.get(timeout=self.timeout_s)

    def close(self) -> None:
        self.producer.close(timeout=5)
