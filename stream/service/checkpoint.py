"""What is safe to commit, and the one place that commits (Quix Streams' Checkpoint, on kafka-python).

An offset is stored only after its record is fully handled (alert or dead letter produced), never
goes backwards, and is committed as ``offset + 1`` in one order, :meth:`Checkpoint.commit`'s:
flush the outputs, persist the state, commit the offsets.

With durable state on (``covered_only``), the committed offset is the one a durable checkpoint
records (:meth:`Checkpoint.cover`), never more: the checkpoint is the authority on where a restored
partition resumes, and a partition whose state must be rebuilt resumes where the last checkpoint did,
not past events that no surviving state reflects. Each commit's metadata names the checkpoint it
reflects (its *anchor*, ``g=N;n=P;l=L``: :func:`parse_anchor`), which a restore goes back to
(:mod:`stream.state.store`); once a commit succeeded, ``committed`` is told which offsets it made safe.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from kafka import OffsetAndMetadata, TopicPartition

from stream.state.store import Anchor

log = logging.getLogger(__name__)


class Checkpoint:
    """Tracks handled offsets per partition and commits them in the safe order."""

    def __init__(self, covered_only: bool = False) -> None:
        self.covered_only = covered_only
        self.handled: dict[TopicPartition, int] = {}
        self.covered: dict[TopicPartition, int] = {}  # next offsets a durable snapshot reflects
        self.committed: dict[TopicPartition, int] = {}
        self.resumed: dict[TopicPartition, int] = {}  # where each owned partition's engine began reading
        self.anchors: dict[TopicPartition, str] = {}  # the checkpoint the covered offsets belong to
        self.committed_anchors: dict[TopicPartition, str] = {}

    def store(self, tp: TopicPartition, offset: int) -> None:
        if offset > self.handled.get(tp, -1):
            self.handled[tp] = offset

    def cover(self, tp: TopicPartition, next_offset: int, anchor: str | None = None) -> None:
        """A durable checkpoint (named by ``anchor``) reflects everything before ``next_offset`` of ``tp``."""
        self.covered[tp] = next_offset
        if anchor is not None:
            self.anchors[tp] = anchor

    def resume(self, tp: TopicPartition, offset: int, anchor: str | None = None) -> None:
        """``tp``'s state (restored or cold) reflects everything before ``offset``, where reading
        resumes; committing it is always safe."""
        self.resumed[tp] = offset
        self.cover(tp, offset, anchor)

    def next_offset(self, tp: TopicPartition) -> int:
        """The next offset of ``tp`` its partition's engine has not seen."""
        handled = self.handled.get(tp)
        return handled + 1 if handled is not None else self.resumed[tp]

    def pending(self, tps: Iterable[TopicPartition] | None = None) -> dict[TopicPartition, int]:
        """Next offsets to commit: only partitions that moved since the last commit, or whose offsets now
        belong to another checkpoint (a quiet topic's commit must name the partition's new checkpoint
        too: a restore goes back to the oldest its topics' commits name)."""
        source = self.covered if self.covered_only else {tp: off + 1 for tp, off in self.handled.items()}
        wanted = None if tps is None else set(tps)
        return {tp: off for tp, off in source.items()
                if (self.committed.get(tp) != off or self.committed_anchors.get(tp) != self.anchors.get(tp))
                and (wanted is None or tp in wanted)}

    def commit(self, consumer: Any, flush: Callable[[], Any], persist: Callable[[], None] | None = None,
               committed: Callable[[dict[TopicPartition, str]], None] | None = None) -> int:
        """1. flush the outputs (every alert and dead letter of the handled records acknowledged);
        2. ``persist`` the state (durable checkpoints :meth:`cover` what may be committed);
        3. commit the offsets, then tell ``committed`` the anchors they named. Returns how many
        partitions were committed."""
        flush()
        if persist is not None:
            persist()
        offsets = self.pending()
        if not offsets:
            return 0
        consumer.commit(as_commit(offsets, self.anchors))
        self.committed.update(offsets)
        self.committed_anchors.update((tp, self.anchors[tp]) for tp in offsets if tp in self.anchors)
        if committed is not None:
            committed({tp: self.anchors[tp] for tp in offsets if tp in self.anchors})
        return len(offsets)

    def commit_async(self, consumer: Any, tps: Iterable[TopicPartition]) -> int:
        """Commit without blocking (for rebalance callbacks, which must stay quick: they share the heartbeat loop)."""
        offsets = self.pending(tps)
        if offsets:
            consumer.commit_async(as_commit(offsets, self.anchors))
            self.committed.update(offsets)
            self.committed_anchors.update((tp, self.anchors[tp]) for tp in offsets if tp in self.anchors)
        return len(offsets)

    def forget(self, tps: Iterable[TopicPartition]) -> None:
        """Drop revoked partitions (their new owner commits from now on)."""
        for tp in tps:
            self.handled.pop(tp, None)
            self.covered.pop(tp, None)
            self.committed.pop(tp, None)
            self.resumed.pop(tp, None)
            self.anchors.pop(tp, None)
            self.committed_anchors.pop(tp, None)


def as_commit(offsets: dict[TopicPartition, int],
              anchors: dict[TopicPartition, str] | None = None) -> dict[TopicPartition, OffsetAndMetadata]:
    anchors = anchors or {}
    return {tp: OffsetAndMetadata(off, anchors.get(tp, ""), -1) for tp, off in offsets.items()}


def parse_anchor(metadata: str | None) -> Anchor | None:
    """The checkpoint a commit's metadata names (None: none). Commits from before incremental state
    name the generation alone.

    >>> parse_anchor("g=12;n=6;l=3"), parse_anchor("g=12")
    (Anchor(generation=12, partitions=6, lineage=3), Anchor(generation=12, partitions=None, lineage=0))
    >>> parse_anchor(""), parse_anchor("g=x")
    (None, None)
    """
    if not metadata or not metadata.startswith("g="):
        return None
    try:
        fields = dict(part.split("=", 1) for part in metadata.split(";"))
        partitions = fields.get("n")
        return Anchor(int(fields["g"]), int(partitions) if partitions is not None else None, int(fields.get("l", 0)))
    except (ValueError, KeyError):
        return None
