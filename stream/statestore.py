"""Partition snapshots on the compacted state topic.

Keys (state topic partition = input partition modulo its partition count):
``{group}/p{p}/g{seq}/c{i}`` for chunks and ``{group}/p{p}/manifest{seq % 2}`` for manifests, so
compaction keeps the last two snapshots (a refused newest one falls back to the one before); chunks
two generations old are tombstoned once a newer manifest is written.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from kafka import KafkaConsumer, TopicPartition

from detectors.engine import Engine
from stream import snapshot
from stream.errors import SnapshotError

log = logging.getLogger(__name__)


@dataclass
class Restored:
    engine: Engine
    offsets: dict[str, int]
    seq: int
    snapshot_bytes: int


@dataclass
class _Log:
    """What the state topic holds for one input partition."""

    manifests: list[tuple[int, bytes]] = field(default_factory=list)  # (seq, value), oldest first
    chunks: dict[str, bytes] = field(default_factory=dict)


class StateStore:
    """Writes and restores per-partition snapshots; ``refused`` is called with a reason code."""

    def __init__(self, producer: Any, make_reader: Callable[[], KafkaConsumer], topic: str, group: str,
                 key: bytes, refused: Callable[[str], None] = lambda reason: None) -> None:
        self.producer = producer
        self.make_reader = make_reader
        self.topic = topic
        self.group = group
        self.key = key
        self.refused = refused
        self.seq: dict[int, int] = {}
        self.chunk_counts: dict[tuple[int, int], int] = {}
        self._n_state_partitions: int | None = None

    def _prefix(self, p: int) -> str:
        return f"{self.group}/p{p}/"

    def _state_partition(self, reader: Any, p: int) -> int:
        if self._n_state_partitions is None:
            reader.topics()
            partitions = reader.partitions_for_topic(self.topic)
            if not partitions:
                raise SnapshotError(f"state topic {self.topic!r} does not exist")
            self._n_state_partitions = len(partitions)
        return p % self._n_state_partitions

    # -- writing ---------------------------------------------------------------------------------
    def write(self, p: int, engine: Engine, offsets: dict[str, int]) -> int:
        """Write one snapshot (not flushed: the caller flushes before committing). Returns bytes."""
        seq = self.seq.get(p, 0) + 1
        snap = snapshot.encode(engine, offsets, p, f"{seq:012d}", self.key)
        state_partition = p % (self._n_state_partitions or self._count_partitions())
        send = self.producer.send
        for i, chunk in enumerate(snap.chunks):
            send(self.topic, key=f"{self._prefix(p)}g{seq}/c{i}".encode(), value=chunk, partition=state_partition)
        send(self.topic, key=f"{self._prefix(p)}manifest{seq % 2}".encode(), value=snap.manifest,
             partition=state_partition)
        for i in range(self.chunk_counts.pop((p, seq - 2), 0)):
            send(self.topic, key=f"{self._prefix(p)}g{seq - 2}/c{i}".encode(), value=None, partition=state_partition)
        self.chunk_counts[(p, seq)] = len(snap.chunks)
        self.seq[p] = seq
        return snap.payload_bytes

    def _count_partitions(self) -> int:
        partitions = self.producer.partitions_for(self.topic)
        self._n_state_partitions = len(partitions)
        return self._n_state_partitions

    # -- restoring -------------------------------------------------------------------------------
    def restore(self, p: int) -> Restored | None:
        """Newest snapshot of partition ``p`` that verifies, or None (cold start)."""
        started = time.perf_counter()
        state_log = self._read(p)
        for seq, value in reversed(state_log.manifests):
            try:
                manifest = snapshot.read_manifest(value, self.key)
                if manifest["partition"] != p:
                    raise SnapshotError("manifest is for another partition")
                seq = int(manifest["generation"])
                keys = [f"{self._prefix(p)}g{seq}/c{i}" for i in range(len(manifest["chunks"]))]
                engine = snapshot.decode(manifest, [state_log.chunks.get(k) for k in keys])
            except SnapshotError as exc:
                log.error("snapshot refused partition=%d generation=%d reason=%s", p, seq, exc)
                self.refused("refused")
                continue
            self.seq[p] = max(seq, self.seq.get(p, 0))
            self.chunk_counts[(p, seq)] = len(keys)
            log.info("snapshot restored partition=%d generation=%d bytes=%d seconds=%.2f", p, seq,
                     manifest["payload_bytes"], time.perf_counter() - started)
            return Restored(engine, manifest["offsets"], seq, manifest["payload_bytes"])
        return None

    def _read(self, p: int) -> _Log:
        reader = self.make_reader()
        try:
            tp = TopicPartition(self.topic, self._state_partition(reader, p))
            reader.assign([tp])
            reader.seek_to_beginning(tp)
            end = reader.end_offsets([tp])[tp]
            return self._collect(reader, tp, end, self._prefix(p).encode())
        finally:
            reader.close()

    def _collect(self, reader: Any, tp: TopicPartition, end: int, prefix: bytes) -> _Log:
        state_log = _Log()
        while reader.position(tp) < end:
            for record in reader.poll(timeout_ms=1000).get(tp, []):
                key = record.key or b""
                if not key.startswith(prefix):
                    continue
                name = key[len(prefix):].decode()
                if name.startswith("manifest"):
                    if record.value is not None:
                        state_log.manifests.append((_seq_of(record.value), record.value))
                elif record.value is None:
                    state_log.chunks.pop(key.decode(), None)
                else:
                    state_log.chunks[key.decode()] = record.value
        state_log.manifests.sort(key=lambda m: m[0])
        return state_log


def _seq_of(manifest: bytes) -> int:
    """The generation number a manifest claims (unverified; only used for ordering)."""
    try:
        return int(orjson.loads(manifest)["body"]["generation"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return -1
