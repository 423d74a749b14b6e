"""One input partition's changelog on the state topic: where each principal's committed record is, and
the checkpoint being written, a few principals at a time.

A checkpoint of generation ``g`` starts with a *cut*: the offsets handled so far, the engine's shared
state encoded there and then, and the principals changed since the previous cut. The loop then goes
on handling events; the changed principals are written a slice at a time (:meth:`PartitionLog.drain`,
within a time budget), and one whose next event comes first is written just before it is handled
(:meth:`~detectors.engine.Engine.track_changes`), so every record holds its principal as of the cut.
When all are written, the shared state's chunks and the signed manifest follow (:meth:`seal`); once
the broker acknowledged everything, the cut's offsets may be committed, and once they are,
:meth:`committed` makes ``g`` the generation a restore goes back to.

Each principal has two slots; a record goes to the one that does not hold the principal's committed
record, which therefore stays readable until a later generation is committed, whatever is left half
written by a crash in between. A principal forgotten by the engine gets a *forgotten* record, and once
that is committed both its slots are tombstoned.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from detectors.engine import Engine
from detectors.portable import export_principal
from stream.state import records

#: Send one record (key, value; None: a tombstone) to the partition's state topic partition.
Send = Callable[[bytes, bytes | None], Any]
#: principals written between two looks at the clock while draining
_SLICE = 32


@dataclass
class LogState:
    """Where a partition's principals stand on the log (what a restore found, or nothing)."""

    #: the generation a restore went back to (0: none)
    generation: int = 0
    #: the first generation of the current partitioning (records older than it belong to another)
    lineage: int = 0
    #: principal -> generation << 2 | live << 1 | committed slot, for every principal with a record
    slots: dict[str, int] = field(default_factory=dict)
    #: the digest of the live records as of ``generation``
    digest: int = 0
    #: (principal, slot) of records a crash left beyond ``generation``: tombstoned by the next checkpoint
    stale: list[tuple[str, int]] = field(default_factory=list)
    #: the highest generation any record, chunk or manifest of the partition has (the next is above it)
    highest: int = 0


@dataclass
class Cut:
    """A checkpoint in progress."""

    generation: int
    offsets: dict[str, int]
    shared: bytes
    engine: Engine
    #: the principals written so far, and the slot each went to (kept until the generation is committed)
    written: list[str] = field(default_factory=list)
    written_slots: bytearray = field(default_factory=bytearray)
    futures: list[Any] = field(default_factory=list)
    sealed: bool = False
    started: float = field(default_factory=time.perf_counter)


class PartitionLog:
    """A partition's principals on the state topic, and its checkpoint in progress (at most one)."""

    def __init__(self, partition: int, partitions: int, prefix: str, key: bytes, key_id: str, send: Send,
                 state: LogState | None = None) -> None:
        state = state or LogState()
        self.partition = partition
        self.partitions = partitions
        self.prefix = prefix
        self.key = key
        self.key_id = key_id
        self.send = send
        self.slots = state.slots
        self.digest = state.digest
        self.lineage = state.lineage
        #: the generation last committed (what a restore goes back to)
        self.committed_generation = state.generation
        self.next_generation = max(state.highest, state.generation) + 1
        self._stale = list(state.stale)
        #: principals whose committed record says forgotten: both slots are tombstoned next time
        self._dead: set[str] = set()
        self.cut: Cut | None = None
        #: a checkpoint written but not yet committed (kept to note its slots once it is)
        self.uncommitted: list[Cut] = []

    # -- a checkpoint -------------------------------------------------------------------------------
    def start(self, engine: Engine, offsets: dict[str, int], shared: bytes) -> Cut:
        """Cut: the principals changed since the last cut are written as they are now; returns the cut."""
        assert self.cut is None, "one checkpoint at a time"
        cut = self.cut = Cut(self.next_generation, offsets, shared, engine)
        self.next_generation += 1
        changed = engine.changed if engine.changed is not None else set()
        engine.changed = set()
        engine.capture_first = changed
        for pid in self._dead - changed:
            for slot in (0, 1):
                cut.futures.append(self.send(records.record_key(self.prefix, pid, slot), None))
            self.slots.pop(pid, None)
        self._dead.clear()
        for pid, slot in self._stale:
            cut.futures.append(self.send(records.record_key(self.prefix, pid, slot), None))
        self._stale.clear()
        return cut

    def write(self, principal_id: str) -> None:
        """Write one principal of the cut (the engine calls this before the principal changes)."""
        cut = self.cut
        assert cut is not None
        state = export_principal(cut.engine, principal_id)
        payload = None if state is None else records.encode_state(state)
        known = self.slots.get(principal_id)
        base = 1 if known is None else known & 1
        slot = 1 - base
        g = cut.generation
        if known is not None and known & 2:
            self.digest -= records.contribution(self.key, principal_id, self.partition, known >> 2)
        if payload is not None:
            self.digest += records.contribution(self.key, principal_id, self.partition, g)
        self.digest %= records.DIGEST_MOD
        self.slots[principal_id] = g << 2 | (payload is not None) << 1 | base
        key = records.record_key(self.prefix, principal_id, slot)
        value = records.seal(self.key, self.key_id, key, self.partition, self.partitions, g, payload)
        cut.futures.append(self.send(key, value))
        cut.written.append(principal_id)
        cut.written_slots.append(slot)

    def drain(self, deadline: float) -> bool:
        """Write the cut's principals until ``deadline`` (``time.perf_counter``); True once all are."""
        cut = self.cut
        if cut is None:
            return True
        pending = cut.engine.capture_first
        while pending:
            for _ in range(min(_SLICE, len(pending))):
                self.write(pending.pop())
            if time.perf_counter() >= deadline:
                return not pending
        return True

    def live(self) -> int:
        """Principals whose latest record is live."""
        return sum(1 for value in self.slots.values() if value & 2)

    def seal(self, manifest: Callable[[Cut, int, int], list[Any]]) -> None:
        """Every principal is written: send the shared state and the manifest (``manifest(cut, digest,
        live)`` sends them and returns their futures)."""
        cut = self.cut
        assert cut is not None and not cut.engine.capture_first
        cut.futures.extend(manifest(cut, self.digest, self.live()))
        cut.sealed = True

    def durable(self) -> bool | None:
        """True once the sealed cut is acknowledged, False if a send failed, None while in flight."""
        cut = self.cut
        if cut is None or not cut.sealed:
            return None
        if not all(f.is_done for f in cut.futures):
            return None
        return all(f.succeeded() for f in cut.futures)

    def finish(self) -> Cut:
        """The cut is acknowledged: it waits for its offsets to be committed."""
        cut = self.cut
        assert cut is not None
        self.cut = None
        self.uncommitted.append(cut)
        return cut

    def abandon(self) -> None:
        """A cut whose records were not all acknowledged: its principals count as changed again (the
        next cut writes them, into the same free slots)."""
        cut = self.cut
        if cut is None:
            return
        self.cut = None
        pending = cut.engine.capture_first
        cut.engine.capture_first = set()
        if cut.engine.changed is not None:
            cut.engine.changed.update(cut.written, pending)

    def committed(self, generation: int) -> None:
        """The offsets of ``generation`` are committed: its records (and those of any uncommitted
        generation before it) are the ones a restore goes back to now."""
        done = [cut for cut in self.uncommitted if cut.generation <= generation]
        self.uncommitted = [cut for cut in self.uncommitted if cut.generation > generation]
        for cut in done:
            for pid, slot in zip(cut.written, cut.written_slots, strict=True):
                value = self.slots.get(pid)
                if value is None:
                    continue
                self.slots[pid] = value & ~1 | slot
                if not value & 2 and value >> 2 == cut.generation:
                    self._dead.add(pid)
        self.committed_generation = max(self.committed_generation, generation)

    def anchor(self, generation: int) -> str:
        """What an offset commit of ``generation`` names (:func:`stream.service.checkpoint.parse_anchor`)."""
        return f"g={generation};n={self.partitions};l={self.lineage}"
