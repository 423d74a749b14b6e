"""A backward read of one state topic partition for one input partition: the records that count.

Each key's latest value is the first one met, so every principal is decoded once, from the record
that counts, and the other slot (an older generation, or a newer one a crash left half written) is
skipped. Used by :meth:`stream.state.store.StateStore.restore`.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from kafka import TopicPartition
from kafka.errors import KafkaTimeoutError

from detectors.engine import Engine
from detectors.portable import restore_principal
from stream.errors import SnapshotError
from stream.state import records, snapshot
from stream.state.changelog import LogState

log = logging.getLogger(__name__)

READ_TIMEOUT_S = 60.0
#: offsets read per backward window of a restore
WINDOW = 50_000
_CHUNK_KEY = re.compile(r"g(\d+)/c(\d+)")


@dataclass(frozen=True)
class Anchor:
    """What an offset commit's metadata names: the generation its offsets reflect, the input partition
    count then (None: not said, before incremental state), and the first generation of that
    partitioning."""

    generation: int
    partitions: int | None = None
    lineage: int = 0


@dataclass
class Found:
    """What a backward read of the state topic partition found for one input partition."""

    manifests: dict[str, bytes] = field(default_factory=dict)  # key suffix -> latest value
    chunks: dict[int, dict[int, bytes]] = field(default_factory=dict)  # generation -> index -> latest value
    highest: int = 0



class Reading:
    """One backward read of a state topic partition for input partition ``p`` at ``anchor``: each key's
    latest value is the first one met; a principal's record counts when it is ``p``'s, of the current
    lineage and not beyond the anchor's generation."""

    def __init__(self, partition_prefix: str, record_prefix: str, keys: dict[str, bytes], key_id: str, p: int,
                 anchor: Anchor, engine: Engine, state: LogState, found: Found) -> None:
        #: verify keys by id, and the id of the one that signs (its key makes the digest)
        self.keys = keys
        self.key_id = key_id
        self.p = p
        self.anchor = anchor
        self.engine = engine
        self.state = state
        self.found = found
        self.prefix = partition_prefix.encode()
        self.records = record_prefix.encode()
        #: principal -> the slots whose latest value has been met (bit 1 << slot)
        self.met: dict[str, int] = {}
        self.failed: set[str] = set()
        self.refused = 0
        #: principals whose committed record is signed with another key than the signing one: the next
        #: checkpoint writes them again, so a key rotated out leaves no record only it verifies
        self.resign: set[str] = set()
        #: (principal, generation) of the live records that count: the digest is computed once the
        #: manifest names the key it was made with
        self.live: list[tuple[str, int]] = []

    def take(self, record: Any) -> None:
        key = record.key or b""
        if key.startswith(self.records):
            self._principal(key, record.value)
        elif key.startswith(self.prefix):
            self._partition_key(key[len(self.prefix):].decode("utf-8", "replace"), record.value)

    def _partition_key(self, suffix: str, value: bytes | None) -> None:
        found = self.found
        if suffix.startswith("manifest"):
            if suffix not in found.manifests:
                found.manifests[suffix] = value  # type: ignore[assignment]
                if value is not None:
                    found.highest = max(found.highest, snapshot.claimed_generation(value))
            return
        m = _CHUNK_KEY.fullmatch(suffix)
        if m is None:
            return
        g, i = int(m.group(1)), int(m.group(2))
        found.highest = max(found.highest, g)
        chunks = found.chunks.setdefault(g, {})
        if i not in chunks and value is not None:
            chunks[i] = value

    def _principal(self, key: bytes, value: bytes | None) -> None:
        parsed = records.parse_key(self.records, key)
        if parsed is None:
            return
        pid, slot = parsed
        met = self.met.get(pid, 0)
        if met & (1 << slot):
            return  # an older value of a key already met
        self.met[pid] = met | 1 << slot
        if value is None:
            return
        header = records.peek(value)
        if header is None or header.partition != self.p:
            return
        generation = header.generation
        state = self.state
        if generation > self.found.highest:
            self.found.highest = generation
        if generation < self.anchor.lineage:
            return  # the principal's record from before a repartition (state repartition moved it)
        if generation > self.anchor.generation:
            state.stale.append((pid, slot))  # a checkpoint a crash left half written
            return
        if pid in state.slots:
            return  # its newer record (met first) counts
        try:
            verified, payload = records.open_record(value, key, self.keys)
        except SnapshotError as exc:
            self.refused += 1
            if self.refused <= 3:
                log.error("principal record refused partition=%d reason=%s", self.p, exc)
            return
        if verified.key_id != self.key_id:
            self.resign.add(pid)
        live = not verified.forgotten
        state.slots[pid] = generation << 2 | live << 1 | slot
        if live:
            principal, failed = records.decode_state(payload)
            self.failed.update(failed)
            self.failed.update(restore_principal(self.engine, pid, principal))
            self.live.append((pid, generation))

    def check(self, manifest: dict[str, Any]) -> None:
        """The records found are exactly those the manifest covers (their digest is its digest)."""
        if self.refused:
            raise SnapshotError(f"{self.refused} principal record(s) do not verify")
        want = int(manifest.get("digest", "0"), 16)
        made_with = manifest.get("key_id")
        key = self.keys.get(made_with, self.keys[self.key_id]) if isinstance(made_with, str) else self.keys[self.key_id]
        if self._digest(key) != want:
            raise SnapshotError("the principal records are not those the manifest covers (a record missing, "
                                "or an older one in place of the newest: a rollback)")
        # the next manifests are made with the signing key (the same one, unless a rotation is under way)
        signing = self.keys[self.key_id]
        self.state.digest = want if key == signing else self._digest(signing)

    def _digest(self, key: bytes) -> int:
        total = 0
        for pid, generation in self.live:
            total += records.contribution(key, pid, self.p, generation)
        return total % records.DIGEST_MOD


def backwards(reader: Any, tp: TopicPartition, begin: int, end: int, window: int = WINDOW,
               timeout_s: float = READ_TIMEOUT_S) -> Iterator[Any]:
    """The records of ``tp`` in ``[begin, end)``, newest first: windows read forwards, from the end."""
    hi = end
    deadline = time.monotonic() + timeout_s
    while hi > begin:
        lo = max(begin, hi - window)
        reader.seek(tp, lo)
        batch: list[Any] = []
        while reader.position(tp) < hi:
            polled = reader.poll(timeout_ms=1000).get(tp, [])
            if polled:
                deadline = time.monotonic() + timeout_s  # the timeout is per stalled fetch
            elif time.monotonic() > deadline:
                raise KafkaTimeoutError(f"state topic not read in {timeout_s:.0f}s")
            batch.extend(record for record in polled if lo <= record.offset < hi)
        batch.reverse()
        yield from batch
        hi = lo
