"""Partition state on the compacted state topic: principal records, shared-state chunks, manifests.

Keys (state topic partition = input partition modulo its partition count):

- ``{group}/u/{principal}/{slot}``: one principal's state (:mod:`stream.state.records`), written by
  :mod:`stream.state.changelog` when it changed since the last checkpoint;
- ``{group}/p{p}/g{seq}/c{i}``: the chunks of partition ``p``'s shared state at generation ``seq``;
- ``{group}/p{p}/manifest{slot}``: the signed manifests (:mod:`stream.state.snapshot`). A manifest
  goes into the slot that does not hold the committed one, which therefore survives a checkpoint left
  half written.

A checkpoint sends its records, chunks and manifest; the caller checks their futures before treating
it as durable, and only then commits the offsets it records. Each offset commit names the checkpoint
it reflects in its metadata (``g=N;n=P;l=L``: generation, input partitions, lineage), in the consumer
group's offsets, which this topic's writers cannot touch. A restore goes back to exactly that
generation: its manifest must verify and name it, every principal's record is the newest of its
partition's lineage not beyond it, and their digest must be the manifest's. An older snapshot
re-published, a newer one tombstoned, a principal's record swapped for an older one or deleted: the
restore is refused (counted), never a silent return to old state, and the partition's state is
rebuilt from the input's retained history instead (:mod:`stream.state.bootstrap`).

A restore reads the state topic partition backwards, a window at a time, so that each key's latest
value comes first: every principal is decoded once, from the record that counts, and the other slot
(an older generation, or a newer one a crash left half written) is skipped. Without a committed
generation (a new consumer group, or offsets that expired), the newest manifest that verifies is
used. Formats 2 to 8 held whole engines in the chunks; they still restore, and the first checkpoint
then writes every principal as a record.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from detectors.engine import Engine
from detectors.portable import export_shared, restore_shared
from stream.errors import SnapshotError, TopologyError
from stream.ops.gctune import paused_gc
from stream.state import snapshot
from stream.state.changelog import Cut, LogState, PartitionLog
from stream.state.reading import Anchor, Found, Reading, backwards

__all__ = ["Anchor", "Restored", "StateStore"]

log = logging.getLogger(__name__)



@dataclass
class Restored:
    engine: Engine
    offsets: dict[str, int]
    seq: int
    snapshot_bytes: int
    #: the partition's open correlated incidents (:meth:`stream.alertmanager.correlate.Correlator.export`)
    incidents: list[Any] = field(default_factory=list)
    #: detectors whose state could not be migrated: rebuilt from the input's history
    rebuild: list[str] = field(default_factory=list)
    principals: int = 0
    #: a whole engine (formats 2-8): the next checkpoint writes every principal as a record
    rewrite_all: bool = False
    #: principals whose records another key signed: the next checkpoint writes them again
    resign: set[str] = field(default_factory=set)


class StateStore:
    """Writes and restores per-partition state; ``refused`` is called with a reason code."""

    def __init__(self, producer: Any, make_reader: Callable[[], KafkaConsumer], topic: str, group: str,
                 key: bytes, refused: Callable[[str], None] = lambda reason: None,
                 chunk_bytes: int = snapshot.CHUNK_BYTES, key_id: str = "1",
                 verify_keys: dict[str, bytes] | None = None,
                 committed: Callable[[int], Anchor | None] = lambda p: None, partitions: int = 1) -> None:
        snapshot._check_key(key)
        self.key_id = key_id
        #: keys that verify manifests and records, by id (the signing key among them)
        self.verify_keys = {**(verify_keys or {}), key_id: key}
        #: what the group's committed offsets of an input partition name (None: nothing committed)
        self.committed = committed
        self.producer = producer
        self.make_reader = make_reader
        self.topic = topic
        self.group = group
        self.key = key
        self.refused = refused
        self.chunk_bytes = chunk_bytes
        #: the input topics' partition count (set by the service once it is known)
        self.partitions = partitions
        self.logs: dict[int, PartitionLog] = {}
        #: per input partition: generation -> chunk count the log (may) still hold under it
        self.on_log: dict[int, dict[int, int]] = {}
        #: per input partition: the manifest slot of the committed generation, and of those written since
        self.manifest_slot: dict[int, int] = {}
        self._written_slots: dict[int, dict[int, int]] = {}
        self._n_state_partitions: int | None = None
        self.record_prefix = f"{group}/u/"
        #: input partitions whose last restore refused what it found (the caller rebuilds them and clears this)
        self.refusals: set[int] = set()

    def anchor(self, p: int) -> str | None:
        """What a commit of ``p``'s offsets as restored names (None: no state was restored)."""
        partition_log = self.logs.get(p)
        if partition_log is None or not partition_log.committed_generation:
            return None
        return partition_log.anchor(partition_log.committed_generation)

    def _prefix(self, p: int) -> str:
        return f"{self.group}/p{p}/"

    def check(self, timeout_s: float = 15.0) -> int:
        """Wait until the state topic is visible (it may have just been created); raise TopologyError
        if it does not exist. Returns its partition count."""
        reader = self.make_reader()
        try:
            return self._state_partitions(reader, timeout_s)
        finally:
            reader.close()

    def _state_partitions(self, reader: Any, timeout_s: float = 15.0) -> int:
        if self._n_state_partitions is None:
            deadline = time.monotonic() + timeout_s
            while True:
                reader.topics()  # a full metadata refresh
                partitions = reader.partitions_for_topic(self.topic)
                if partitions:
                    break
                if time.monotonic() > deadline:
                    raise TopologyError(f"state topic {self.topic!r} does not exist (create it with "
                                        "cleanup.policy=compact, or run with --create-topics)")
                time.sleep(0.5)
            self._n_state_partitions = len(partitions)
        return self._n_state_partitions

    def _state_partition(self, p: int) -> int:
        if self._n_state_partitions is None:
            self._n_state_partitions = len(self.producer.partitions_for(self.topic))
        return p % self._n_state_partitions

    # -- writing ---------------------------------------------------------------------------------
    def log(self, p: int, state: LogState | None = None) -> PartitionLog:
        """Partition ``p``'s changelog (a fresh one for a cold start, or the one a restore prepared)."""
        if state is not None or p not in self.logs:
            self.logs[p] = PartitionLog(p, self.partitions, self.record_prefix, self.key, self.key_id,
                                        self._sender(p), state)
        return self.logs[p]

    def _sender(self, p: int) -> Callable[[bytes, bytes | None], Any]:
        def to_state_topic(key: bytes, value: bytes | None) -> Any:
            return self.producer.send(self.topic, key=key, value=value, partition=self._state_partition(p))

        return to_state_topic

    def start(self, p: int, engine: Engine, offsets: dict[str, int], incidents: list[Any]) -> Cut:
        """Cut a checkpoint of partition ``p``: its shared state is encoded now, its changed principals
        are written by :meth:`PartitionLog.drain` (and before their next event)."""
        with paused_gc():
            shared = snapshot.encode_shared(export_shared(engine), incidents)
        return self.log(p).start(engine, offsets, shared)

    def seal(self, p: int) -> None:
        """Every principal of ``p``'s cut is written: send its shared state and manifest."""
        self.logs[p].seal(lambda cut, digest, live: self._manifest(p, cut, digest, live))

    def _manifest(self, p: int, cut: Cut, digest: int, live: int) -> list[Any]:
        partition_log = self.logs[p]
        extra = {"partitions": self.partitions, "lineage": partition_log.lineage, "digest": f"{digest:064x}",
                 "principals": live, "state_versions": {d.name: d.state_version for d in cut.engine.detectors}}
        snap = snapshot.seal(cut.shared, cut.offsets, p, cut.generation, self.key, self.group, self.chunk_bytes,
                             self.key_id, extra=extra)
        send = self._sender(p)
        prefix = self._prefix(p)
        futures = [send(f"{prefix}g{cut.generation}/c{i}".encode(), chunk) for i, chunk in enumerate(snap.chunks)]
        slot = 1 - self.manifest_slot.get(p, 1)
        futures.append(send(f"{prefix}manifest{slot}".encode(), snap.manifest))
        self._written_slots.setdefault(p, {})[cut.generation] = slot
        generations = self.on_log.setdefault(p, {})
        keep = {partition_log.committed_generation, cut.generation}
        for old in sorted(g for g in generations if g not in keep and g < cut.generation):
            for i in range(generations.pop(old)):  # tombstones; their loss only delays compaction
                send(f"{prefix}g{old}/c{i}".encode(), None)
        generations[cut.generation] = max(generations.get(cut.generation, 0), len(snap.chunks))
        return futures

    def committed_at(self, p: int, generation: int) -> None:
        """``p``'s offsets of ``generation`` are committed: its records and manifest are the ones to keep."""
        partition_log = self.logs.get(p)
        if partition_log is None:
            return
        partition_log.committed(generation)
        slots = self._written_slots.get(p, {})
        if generation in slots:
            self.manifest_slot[p] = slots[generation]
        for g in [g for g in slots if g <= generation]:
            del slots[g]

    def forget(self, p: int) -> None:
        """A partition no longer owned: its changelog goes (its new owner restores from the topic)."""
        self.logs.pop(p, None)
        self.on_log.pop(p, None)
        self.manifest_slot.pop(p, None)
        self._written_slots.pop(p, None)

    # -- restoring -------------------------------------------------------------------------------
    def restore(self, p: int, make_engine: Callable[[], Engine]) -> Restored | None:
        """The state the group's commits name for partition ``p`` (or, with none, the newest that
        verifies), or None (nothing to restore, or refused: the caller rebuilds it from history).

        Raises KafkaError (e.g. a timeout) when the state topic cannot be read: the caller keeps the
        partition paused and retries; it must not start cold on a transient error.
        """
        started = time.perf_counter()
        anchor = self.committed(p)
        if anchor is not None and anchor.partitions not in (None, self.partitions):
            raise TopologyError(f"the state of input partition {p} was written when the input topics had "
                                f"{anchor.partitions} partitions, and they have {self.partitions} now: run privwatch "
                                "state repartition first (docs/state.md)")
        reader = self.make_reader()
        try:
            tp = TopicPartition(self.topic, p % self._state_partitions(reader))
            reader.assign([tp])
            begin, end = reader.beginning_offsets([tp])[tp], reader.end_offsets([tp])[tp]
            if anchor is None:
                anchor = self._newest(reader, tp, begin, end, p)
                if anchor is None:
                    self.log(p)
                    return None
            restored = self._read(reader, tp, begin, end, p, anchor, make_engine)
        finally:
            reader.close()
        if restored is not None:
            log.info("state restored partition=%d generation=%d principals=%d bytes=%d seconds=%.2f", p,
                     restored.seq, restored.principals, restored.snapshot_bytes, time.perf_counter() - started)
        return restored

    def _refuse(self, p: int, generation: int, why: str, state: LogState) -> None:
        log.error("state refused partition=%d generation=%d reason=%s; it is rebuilt from the input's history",
                  p, generation, why)
        self.refused("refused")
        self.refusals.add(p)
        # continue above whatever is on the log, so nothing refused is mistaken for ours later
        self.log(p, LogState(highest=state.highest))

    def _newest(self, reader: Any, tp: TopicPartition, begin: int, end: int, p: int) -> Anchor | None:
        """Without a committed generation: that of the newest manifest of ``p`` that verifies."""
        found = Found()
        prefix = self._prefix(p).encode()
        for record in backwards(reader, tp, begin, end):
            key = record.key or b""
            if key.startswith(prefix) and key[len(prefix):].startswith(b"manifest"):
                found.manifests.setdefault(key[len(prefix):].decode(), record.value)
                if len(found.manifests) == 2:
                    break
        best: Anchor | None = None
        for value in found.manifests.values():
            if value is None:
                continue
            try:
                body = snapshot.read_manifest(value, self.verify_keys)
            except SnapshotError as exc:
                log.error("state manifest refused partition=%d reason=%s", p, exc)
                self.refused("refused")
                self.refusals.add(p)
                continue
            if body["partition"] == p and body.get("group") == self.group and (
                    best is None or body["generation"] > best.generation):
                best = Anchor(body["generation"], body.get("partitions"), int(body.get("lineage", 0)))
        if best is not None and best.partitions not in (None, self.partitions):
            raise TopologyError(f"the newest state of input partition {p} was written for {best.partitions} input "
                                f"partitions, and there are {self.partitions} now: run privwatch state repartition "
                                "first (docs/state.md)")
        return best

    def _read(self, reader: Any, tp: TopicPartition, begin: int, end: int, p: int, anchor: Anchor,
              make_engine: Callable[[], Engine]) -> Restored | None:
        """Read ``p``'s state at ``anchor`` backwards; None (refused) unless it is complete and verifies."""
        engine = make_engine()
        state = LogState(generation=anchor.generation, lineage=anchor.lineage)
        found = Found()
        reading = Reading(self._prefix(p), self.record_prefix, self.verify_keys, self.key_id, p, anchor, engine,
                          state, found)
        with paused_gc():
            for record in backwards(reader, tp, begin, end):
                reading.take(record)
            # the principals' state lives on: frozen before collection resumes, or re-enabling it would
            # walk every object just restored (7 us per principal at 30,000)
            gc.freeze()
        state.highest = max(found.highest, anchor.generation)
        try:
            manifest_value, manifest = self._anchored(p, anchor, found)
            chunks = found.chunks.get(anchor.generation, {})
            ordered = [chunks.get(i) for i in range(len(manifest["chunks"]))]
            with paused_gc():
                if manifest.get("format", 0) < snapshot.INCREMENTAL:  # a whole engine (before incremental state)
                    return self._whole(p, manifest, ordered, state)
                shared, incidents = snapshot.decode_shared(manifest, ordered)
                reading.check(manifest)
                rebuild = sorted(set(reading.failed) | set(restore_shared(engine, shared)))
        except SnapshotError as exc:
            self._refuse(p, anchor.generation, str(exc), state)
            return None
        self._adopt(p, state, manifest_value, found)
        return Restored(engine, manifest["offsets"], anchor.generation, manifest["payload_bytes"], incidents,
                        rebuild, int(manifest.get("principals", 0)), resign=reading.resign)

    def _anchored(self, p: int, anchor: Anchor, found: Found) -> tuple[bytes, dict[str, Any]]:
        """The manifest of the anchor's generation, verified; SnapshotError says why there is none."""
        why = "its manifest is missing (tombstoned, or never written)"
        for value in found.manifests.values():
            if value is None:
                continue
            try:
                manifest = snapshot.read_manifest(value, self.verify_keys)
            except SnapshotError as exc:
                why = str(exc)
                continue
            if manifest["partition"] != p or manifest.get("group") != self.group:
                why = "manifest is for another partition or group"
            elif manifest["generation"] != anchor.generation:
                why = (f"rollback: the manifest found is of generation {manifest['generation']}, and the group's "
                       f"commits name generation {anchor.generation}")
            else:
                return value, manifest
        raise SnapshotError(why)

    def _whole(self, p: int, manifest: dict[str, Any], chunks: list[bytes | None], state: LogState) -> Restored:
        """A format 2-8 snapshot: the whole engine; the next checkpoint writes all of its principals."""
        engine, incidents = snapshot.decode_state(manifest, chunks)
        self.log(p, LogState(generation=manifest["generation"], highest=max(state.highest, manifest["generation"])))
        return Restored(engine, manifest["offsets"], manifest["generation"], manifest["payload_bytes"], incidents,
                        principals=engine.n_principals(), rewrite_all=True)

    def _adopt(self, p: int, state: LogState, manifest_value: bytes, found: Found) -> None:
        """Take over ``p``'s changelog as the restore found it."""
        self.log(p, state)
        slot_key = next(k for k, v in found.manifests.items() if v == manifest_value)
        self.manifest_slot[p] = int(slot_key[-1])
        self.on_log[p] = {g: len(chunks) for g, chunks in found.chunks.items()}
