"""What is safe to commit (Quix Streams' Checkpoint, on kafka-python).

An offset is stored only after its record is fully handled (alert or dead letter produced), never
goes backwards, and is committed as ``offset + 1`` only after the producer is flushed (and the
state covering it persisted, when a persister is given).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from kafka import OffsetAndMetadata, TopicPartition

log = logging.getLogger(__name__)


class Checkpoint:
    """Tracks handled offsets per partition and commits them in the safe order."""

    def __init__(self) -> None:
        self.handled: dict[TopicPartition, int] = {}
        self.committed: dict[TopicPartition, int] = {}

    def store(self, tp: TopicPartition, offset: int) -> None:
        if offset > self.handled.get(tp, -1):
            self.handled[tp] = offset

    def pending(self) -> dict[TopicPartition, int]:
        """Next offsets to commit: only partitions that moved since the last commit."""
        return {tp: off + 1 for tp, off in self.handled.items() if self.committed.get(tp) != off + 1}

    def commit(self, consumer: Any, flush: Callable[[], None], persist: Callable[[dict], None] | None = None) -> int:
        """Flush outputs, persist state, then commit. Returns how many partitions were committed."""
        offsets = self.pending()
        if not offsets:
            return 0
        flush()
        if persist is not None:
            persist(offsets)
        consumer.commit({tp: OffsetAndMetadata(off, "", -1) for tp, off in offsets.items()})
        self.committed.update(offsets)
        return len(offsets)

    def forget(self, tps: Any) -> None:
        """Drop revoked partitions (their new owner commits from now on)."""
        for tp in tps:
            self.handled.pop(tp, None)
            self.committed.pop(tp, None)
