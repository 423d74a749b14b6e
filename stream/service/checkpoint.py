"""What is safe to commit, and the one place that commits (Quix Streams' Checkpoint, on kafka-python).

An offset is stored only after its record is fully handled (alert or dead letter produced), never
goes backwards, and is committed as ``offset + 1`` in one order, :meth:`Checkpoint.commit`'s:
flush the outputs, persist the state, commit the offsets.

With state snapshots on (``covered_only``), the committed offset is the one a durable snapshot
records (:meth:`Checkpoint.cover`), never more: the snapshot is the authority on where a restored
partition resumes, and a cold start (no usable snapshot) then resumes where the last snapshot did,
not past events that no surviving state reflects. Each commit's metadata names the generation of the
snapshot it reflects (``g=N``), which a restore checks manifests against (:mod:`stream.state.store`).
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
        self.resumed: dict[TopicPartition, int] = {}  # where each owned partition's engine began reading
        self.generation: dict[TopicPartition, int] = {}  # snapshot generation the covered offsets belong to

    def store(self, tp: TopicPartition, offset: int) -> None:
        if offset > self.handled.get(tp, -1):
            self.handled[tp] = offset

    def cover(self, tp: TopicPartition, next_offset: int, generation: int | None = None) -> None:
        """A durable snapshot (of ``generation``) reflects everything before ``next_offset`` of ``tp``."""
        self.covered[tp] = next_offset
        if generation is not None:
            self.generation[tp] = generation

    def resume(self, tp: TopicPartition, offset: int, generation: int | None = None) -> None:
        """``tp``'s state (restored or cold) reflects everything before ``offset``, where reading
        resumes; committing it is always safe."""
        self.resumed[tp] = offset
        self.cover(tp, offset, generation)

    def next_offset(self, tp: TopicPartition) -> int:
        """The next offset of ``tp`` its partition's engine has not seen."""
        handled = self.handled.get(tp)
        return handled + 1 if handled is not None else self.resumed[tp]

    def pending(self, tps: Iterable[TopicPartition] | None = None) -> dict[TopicPartition, int]:
        """Next offsets to commit: only partitions that moved since the last commit."""
        source = self.covered if self.covered_only else {tp: off + 1 for tp, off in self.handled.items()}
        wanted = None if tps is None else set(tps)
        return {tp: off for tp, off in source.items()
                if self.committed.get(tp) != off and (wanted is None or tp in wanted)}

    def commit(self, consumer: Any, flush: Callable[[], Any], persist: Callable[[], None] | None = None) -> int:
        """1. flush the outputs (every alert and dead letter of the handled records acknowledged);
        2. ``persist`` the state (durable snapshots :meth:`cover` what may be committed);
        3. commit the offsets. Returns how many partitions were committed."""
        flush()
        if persist is not None:
            persist()
        offsets = self.pending()
        if not offsets:
            return 0
        consumer.commit(as_commit(offsets, self.generation))
        self.committed.update(offsets)
        return len(offsets)

    def commit_async(self, consumer: Any, tps: Iterable[TopicPartition]) -> int:
        """Commit without blocking (for rebalance callbacks, which must stay quick: they share the heartbeat loop)."""
        offsets = self.pending(tps)
        if offsets:
            consumer.commit_async(as_commit(offsets, self.generation))
            self.committed.update(offsets)
        return len(offsets)

    def forget(self, tps: Iterable[TopicPartition]) -> None:
        """Drop revoked partitions (their new owner commits from now on)."""
        for tp in tps:
            self.handled.pop(tp, None)
            self.covered.pop(tp, None)
            self.committed.pop(tp, None)
            self.resumed.pop(tp, None)
            self.generation.pop(tp, None)


def as_commit(offsets: dict[TopicPartition, int],
              generations: dict[TopicPartition, int] | None = None) -> dict[TopicPartition, OffsetAndMetadata]:
    generations = generations or {}
    return {tp: OffsetAndMetadata(off, f"g={generations[tp]}" if tp in generations else "", -1)
            for tp, off in offsets.items()}


def committed_generation(metadata: str | None) -> int | None:
    """The snapshot generation a commit's metadata names (None: none).

    >>> committed_generation("g=12"), committed_generation(""), committed_generation("g=x")
    (12, None, None)
    """
    if not metadata or not metadata.startswith("g="):
        return None
    try:
        return int(metadata[2:])
    except ValueError:
        return None
