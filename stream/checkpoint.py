"""What is safe to commit (Quix Streams' Checkpoint, on kafka-python).

An offset is stored only after its record is fully handled (alert or dead letter produced), never
goes backwards, and is committed as ``offset + 1`` only after the producer is flushed.

With state snapshots on (``covered_only``), the committed offset is the one a durable snapshot
records (:meth:`Checkpoint.cover`), never more: the snapshot is the authority on where a restored
partition resumes, and a cold start (no usable snapshot) then resumes where the last snapshot did,
not past events that no surviving state reflects.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from kafka import OffsetAndMetadata, TopicPartition

log = logging.getLogger(__name__)


class Checkpoint:
    """Tracks handled offsets per partition and commits them in the safe order."""

    def __init__(self, covered_only: bool = False) -> None:
        self.covered_only = covered_only
        self.handled: dict[TopicPartition, int] = {}
        self.covered: dict[TopicPartition, int] = {}  # next offsets a durable snapshot reflects
        self.committed: dict[TopicPartition, int] = {}

    def store(self, tp: TopicPartition, offset: int) -> None:
        if offset > self.handled.get(tp, -1):
            self.handled[tp] = offset

    def cover(self, tp: TopicPartition, next_offset: int) -> None:
        """A durable snapshot reflects everything before ``next_offset`` of ``tp``."""
        self.covered[tp] = next_offset

    def pending(self, tps: Iterable[TopicPartition] | None = None) -> dict[TopicPartition, int]:
        """Next offsets to commit: only partitions that moved since the last commit."""
        source = self.covered if self.covered_only else {tp: off + 1 for tp, off in self.handled.items()}
        wanted = None if tps is None else set(tps)
        return {tp: off for tp, off in source.items()
                if self.committed.get(tp) != off and (wanted is None or tp in wanted)}

    def commit(self, consumer: Any, flush: Callable[[], None]) -> int:
        """Flush outputs, then commit (state is persisted by the caller's snapshots, which
        :meth:`cover` what may be committed). Returns how many partitions were committed."""
        offsets = self.pending()
        if not offsets:
            return 0
        flush()
        consumer.commit(as_commit(offsets))
        self.committed.update(offsets)
        return len(offsets)

    def commit_async(self, consumer: Any, tps: Iterable[TopicPartition]) -> int:
        """Commit without blocking (for rebalance callbacks, which must stay quick: they share the heartbeat loop)."""
        offsets = self.pending(tps)
        if offsets:
            consumer.commit_async(as_commit(offsets))
            self.committed.update(offsets)
        return len(offsets)

    def forget(self, tps: Any) -> None:
        """Drop revoked partitions (their new owner commits from now on)."""
        for tp in tps:
            self.handled.pop(tp, None)
            self.covered.pop(tp, None)
            self.committed.pop(tp, None)


def as_commit(offsets: dict[TopicPartition, int]) -> dict[TopicPartition, OffsetAndMetadata]:
    return {tp: OffsetAndMetadata(off, "", -1) for tp, off in offsets.items()}
