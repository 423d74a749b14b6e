"""State follows the principal: after the input topics gained partitions, move each principal's state to
the partition its key now hashes to (Kafka's default partitioner, murmur2), so no baseline is lost.

Run with the service stopped (docs/state.md, "Adding input partitions"). :func:`repartition` restores
every old partition at the checkpoint the group's commits name, builds one engine per new partition
(each principal's state from the old partition that held it; the shared state, peer groups and
organisation, from the old partition most of its principals come from: for a multiple of the old
count, all of them), and writes each new partition a checkpoint of a new *lineage*: a generation above
everything on the state topic, whose records say the new partition count. Records go into the slot that
does not hold the principal's committed record, and manifests likewise, so until the caller commits
the returned anchors the old state stays what a restore finds: a repartition that dies half way is run
again. Records of older lineages are ignored by restores (:mod:`stream.state.reading`).

Offsets: new partition ``q`` below the old count resumes where old partition ``q`` was committed (its
records before that are in the state moved); the new partitions start at offset 0 (nothing of theirs
was read). Events already in an old partition but not yet read are scored by that partition's owner,
as they were produced; stop the producers first for an exact move.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from kafka.partitioner.default import murmur2

from detectors.engine import Engine
from detectors.portable import export_principal, export_shared, principal_ids, restore_principal, restore_shared
from stream.state.changelog import LogState
from stream.state.store import Anchor, Restored, StateStore

log = logging.getLogger(__name__)


def partition_of(principal_id: str, partitions: int) -> int:
    """The input partition a principal's events go to (the producers key them by principal id)."""
    return (murmur2(principal_id.encode()) & 0x7FFFFFFF) % partitions


@dataclass
class Moved:
    """What a new partition holds after :func:`repartition`, and what the group must commit for it."""

    anchor: Anchor
    #: next offset per input topic
    offsets: dict[str, int]
    principals: int
    #: the old partition its shared state came from
    shared_from: int

    def metadata(self) -> str:
        """What the offsets' commit names (:func:`stream.service.checkpoint.parse_anchor`)."""
        return f"g={self.anchor.generation};n={self.anchor.partitions};l={self.anchor.lineage}"


def repartition(old: StateStore, new: StateStore, make_engine: Callable[[], Engine], inputs: list[str],
                flush: Callable[[], None], shared: bool = True) -> dict[int, Moved]:
    """Move the state of ``old.partitions`` input partitions to ``new.partitions`` (both stores on the
    same state topic and group); ``flush`` waits for the producer's acknowledgements. ``shared``: the
    partitions' baselines are shared (``commons_interval_s`` > 0), so each old partition's shared state
    goes to one new partition, its namesake, and the sums over the partitions stay what they were;
    otherwise every new partition takes a copy (its own baselines). Returns, per new partition, the
    anchor and offsets to commit; RuntimeError when a record was not acknowledged."""
    restored = {p: old.restore(p, make_engine) for p in range(old.partitions)}
    refused = sorted(p for p in old.refusals)
    if refused:
        raise RuntimeError(f"the state of old partition(s) {refused} was refused: nothing moved (docs/state.md)")
    lineage = 1 + max([log_.next_generation - 1 for log_ in old.logs.values()] + [0])
    engines = {q: make_engine() for q in range(new.partitions)}
    sources: dict[int, Counter[int]] = {q: Counter() for q in engines}
    slots: dict[int, dict[str, int]] = {q: {} for q in engines}
    for p, state in restored.items():
        if state is None:
            continue
        committed_slots = old.logs[p].slots
        for pid in principal_ids(state.engine):
            q = partition_of(pid, new.partitions)
            principal = export_principal(state.engine, pid)
            if principal is None:
                continue
            restore_principal(engines[q], pid, principal)
            sources[q][p] += 1
            # not live, generation 0: the next record goes to the other slot, and adds nothing to undo
            slots[q][pid] = committed_slots.get(pid, 1) & 1
    moved = {}
    for q, engine in engines.items():
        source = _source(q, sources[q], restored, shared)
        if source is not None:
            restore_shared(engine, export_shared(restored[source].engine))  # type: ignore[union-attr]
        moved[q] = _write(new, old, q, engine, lineage, slots[q], _offsets(q, restored, inputs), source)
    flush()
    for q in moved:
        if new.logs[q].durable() is not True:
            raise RuntimeError(f"the state of new partition {q} was not acknowledged: nothing committed, run again")
        new.logs[q].finish()
    return moved


def _source(q: int, counts: Counter[int], restored: dict[int, Restored | None], shared: bool) -> int | None:
    """The old partition whose shared state new partition ``q`` takes: its namesake when the baselines
    are shared (the others none), else the one most of its principals come from."""
    if shared:
        return q if restored.get(q) is not None else None
    if counts:
        return counts.most_common(1)[0][0]
    p = q % len(restored)
    return p if restored.get(p) is not None else None


def _offsets(q: int, restored: dict[int, Restored | None], inputs: list[str]) -> dict[str, int]:
    state = restored.get(q)
    known = {} if state is None else state.offsets
    return {topic: int(known.get(topic, 0)) for topic in inputs}


def _write(new: StateStore, old: StateStore, q: int, engine: Engine, lineage: int, slots: dict[str, int],
           offsets: dict[str, int], source: int | None) -> Moved:
    """New partition ``q``'s first checkpoint of the new lineage (every principal written)."""
    partition_log = new.log(q, LogState(lineage=lineage, highest=lineage - 1, slots=slots))
    if q in old.manifest_slot:  # the old committed manifest stays until the anchors are committed
        new.manifest_slot[q] = old.manifest_slot[q]
    engine.track_changes(partition_log.write)
    assert engine.changed is not None
    engine.changed.update(principal_ids(engine))
    cut = new.start(q, engine, offsets, [])
    partition_log.drain(float("inf"))
    new.seal(q)
    log.info("state repartitioned partition=%d principals=%d shared_from=%s generation=%d", q, len(cut.written),
             source, cut.generation)
    return Moved(Anchor(cut.generation, new.partitions, lineage), offsets, engine.n_principals(),
                 -1 if source is None else source)
