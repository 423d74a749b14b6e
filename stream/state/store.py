"""Partition snapshots on the compacted state topic.

Keys (state topic partition = input partition modulo its partition count):
``{group}/p{p}/g{seq}/c{i}`` for chunks and ``{group}/p{p}/manifest{seq % 2}`` for manifests, so
compaction keeps the last two snapshots (a refused newest one falls back to the one before).
Writing generation ``seq`` tombstones the chunks of every generation older than ``seq - 1`` that
the log still holds; ``seq - 1`` stays intact as the fallback until ``seq`` is durable.

A write sends chunks, then the manifest; the caller flushes and checks :meth:`StateStore.write`'s
futures before it treats the snapshot as durable (and only then commits the offsets it records).
The reader keeps the last value per key, exactly as compaction will, so restores behave the same
before and after the cleaner ran.

Rollback: the state topic is not trusted to be current. Each offset commit carries the generation of
the snapshot it reflects (``g=N`` in the commit's metadata, in the consumer group's offsets, which
this topic's writers cannot touch), and a restore refuses any manifest older than that generation,
however well signed: an older snapshot re-published, or the newest ones tombstoned, is a cold start
from the committed offsets (counted ``refused``), never a silent return to old state.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaTimeoutError

from detectors.engine import Engine
from stream.errors import SnapshotError, TopologyError
from stream.state import snapshot

log = logging.getLogger(__name__)

READ_TIMEOUT_S = 60.0
_CHUNK_KEY = re.compile(r"g(\d+)/c(\d+)")


@dataclass
class Restored:
    engine: Engine
    offsets: dict[str, int]
    seq: int
    snapshot_bytes: int
    #: the partition's open correlated incidents (:meth:`stream.alertmanager.correlate.Correlator.export`)
    incidents: list[Any] = field(default_factory=list)


@dataclass
class _Log:
    """What the state topic holds for one input partition (last value per key, like compaction)."""

    manifests: dict[str, bytes] = field(default_factory=dict)  # key suffix -> value
    chunks: dict[str, bytes] = field(default_factory=dict)  # full key -> value


@dataclass
class Written:
    """One snapshot write in flight: durable once every future succeeded after a flush."""

    partition: int
    seq: int
    payload_bytes: int
    futures: list[Any]

    def durable(self) -> bool:
        return all(f.is_done and f.succeeded() for f in self.futures)


class StateStore:
    """Writes and restores per-partition snapshots; ``refused`` is called with a reason code."""

    def __init__(self, producer: Any, make_reader: Callable[[], KafkaConsumer], topic: str, group: str,
                 key: bytes, refused: Callable[[str], None] = lambda reason: None,
                 chunk_bytes: int = snapshot.CHUNK_BYTES, key_id: str = "1",
                 verify_keys: dict[str, bytes] | None = None,
                 committed: Callable[[int], int | None] = lambda p: None) -> None:
        snapshot._check_key(key)
        self.key_id = key_id
        #: keys that verify manifests, by id (the signing key among them)
        self.verify_keys = {**(verify_keys or {}), key_id: key}
        #: the generation the group's committed offsets of an input partition reflect (None: not known)
        self.committed = committed
        self.producer = producer
        self.make_reader = make_reader
        self.topic = topic
        self.group = group
        self.key = key
        self.refused = refused
        self.chunk_bytes = chunk_bytes
        self.seq: dict[int, int] = {}
        #: per input partition: generation -> chunk count the log (may) still hold under it
        self.on_log: dict[int, dict[int, int]] = {}
        self._n_state_partitions: int | None = None

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

    # -- writing ---------------------------------------------------------------------------------
    def write(self, p: int, engine: Engine, offsets: dict[str, int], incidents: Sequence[Any] = ()) -> Written:
        """Send one snapshot (not flushed: the caller flushes, then checks ``Written.durable()``)."""
        return self.write_payload(p, snapshot.encode_payload(engine, incidents), offsets)

    def write_payload(self, p: int, payload: bytes, offsets: dict[str, int]) -> Written:
        """:meth:`write` of a payload already encoded (:func:`stream.state.snapshot.encode_payload`)."""
        seq = self.seq.get(p, 0) + 1
        snap = snapshot.seal(payload, offsets, p, seq, self.key, self.group, self.chunk_bytes, self.key_id)
        n = self._n_state_partitions or self._count_partitions()
        state_partition = p % n
        send = self.producer.send
        prefix = self._prefix(p)
        futures = [send(self.topic, key=f"{prefix}g{seq}/c{i}".encode(), value=chunk, partition=state_partition)
                   for i, chunk in enumerate(snap.chunks)]
        futures.append(send(self.topic, key=f"{prefix}manifest{seq % 2}".encode(), value=snap.manifest,
                            partition=state_partition))
        generations = self.on_log.setdefault(p, {})
        for old in sorted(g for g in generations if g < seq - 1):
            for i in range(generations.pop(old)):  # tombstones; their loss only delays compaction
                send(self.topic, key=f"{prefix}g{old}/c{i}".encode(), value=None, partition=state_partition)
        generations[seq] = max(generations.get(seq, 0), len(snap.chunks))
        self.seq[p] = seq
        return Written(p, seq, snap.payload_bytes, futures)

    def _count_partitions(self) -> int:
        partitions = self.producer.partitions_for(self.topic)
        self._n_state_partitions = len(partitions)
        return self._n_state_partitions

    # -- restoring -------------------------------------------------------------------------------
    def restore(self, p: int) -> Restored | None:
        """Newest snapshot of partition ``p`` that verifies, or None (cold start).

        Raises KafkaError (e.g. a timeout) when the state topic cannot be read: the caller keeps
        the partition paused and retries; it must not cold-start on a transient error.
        """
        started = time.perf_counter()
        state_log = self._read(p)
        prefix = self._prefix(p)
        generations: dict[int, int] = {}
        for key in state_log.chunks:
            m = _CHUNK_KEY.fullmatch(key[len(prefix):])
            if m:
                g, i = int(m.group(1)), int(m.group(2))
                generations[g] = max(generations.get(g, 0), i + 1)
        self.on_log[p] = generations
        candidates = sorted(state_log.manifests.values(), key=snapshot.claimed_generation, reverse=True)
        floor = self.committed(p) or 0
        for value in candidates:
            claimed = snapshot.claimed_generation(value)
            try:
                manifest = snapshot.read_manifest(value, self.verify_keys)
                if manifest["partition"] != p or manifest.get("group") != self.group:
                    raise SnapshotError("manifest is for another partition or group")
                seq = manifest["generation"]
                if seq < floor:
                    raise SnapshotError(f"rollback: generation {seq} is older than generation {floor}, which the "
                                        "group's committed offsets reflect")
                keys = [f"{prefix}g{seq}/c{i}" for i in range(len(manifest["chunks"]))]
                engine, incidents = snapshot.decode_state(manifest, [state_log.chunks.get(k) for k in keys])
            except SnapshotError as exc:
                log.error("snapshot refused partition=%d generation=%d reason=%s; falling back", p, claimed, exc)
                self.refused("refused")
                continue
            # The next write reuses the slot of anything newer that was refused, keeping this one as
            # the fallback.
            self.seq[p] = seq
            log.info("snapshot restored partition=%d generation=%d bytes=%d seconds=%.2f", p, seq,
                     manifest["payload_bytes"], time.perf_counter() - started)
            return Restored(engine, manifest["offsets"], seq, manifest["payload_bytes"], incidents)
        if candidates or floor:
            log.error("no usable snapshot partition=%d refused=%d committed_generation=%d; cold start from the "
                      "committed offsets", p, len(candidates), floor)
            if not candidates:
                self.refused("missing")
        # continue above whatever is on the log or committed, so nothing refused is mistaken for ours later
        self.seq[p] = max([0, floor, *generations, *map(snapshot.claimed_generation, candidates)])
        return None

    def _read(self, p: int) -> _Log:
        reader = self.make_reader()
        try:
            tp = TopicPartition(self.topic, p % self._state_partitions(reader))
            reader.assign([tp])
            reader.seek_to_beginning(tp)
            end = reader.end_offsets([tp])[tp]
            return self._collect(reader, tp, end, self._prefix(p).encode())
        finally:
            reader.close()

    def _collect(self, reader: Any, tp: TopicPartition, end: int, prefix: bytes,
                 timeout_s: float = READ_TIMEOUT_S) -> _Log:
        state_log = _Log()
        deadline = time.monotonic() + timeout_s
        while reader.position(tp) < end:
            if time.monotonic() > deadline:
                raise KafkaTimeoutError(f"state topic not read to its end in {timeout_s:.0f}s")
            for record in reader.poll(timeout_ms=1000).get(tp, []):
                key = record.key or b""
                if not key.startswith(prefix):
                    continue
                name = key.decode(errors="replace")
                suffix = name[len(prefix):]
                target = state_log.manifests if suffix.startswith("manifest") else state_log.chunks
                ident = suffix if target is state_log.manifests else name
                if record.value is None:
                    target.pop(ident, None)
                else:
                    target[ident] = record.value
        return state_log
