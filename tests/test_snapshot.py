"""Snapshot encoding and the state store without a broker: round trip, tampering, fallback, tombstones."""

from __future__ import annotations

import gc
import hashlib
import logging
import pickle
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import TopicPartition

from detectors.engine import Engine
from detectors.events import Event
from stream.alertmanager.correlate import Correlator
from stream.bench.state import run_state_benchmark
from stream.errors import SnapshotError, TopologyError
from stream.service.checkpoint import Checkpoint
from stream.state import snapshot
from stream.state.store import StateStore

KEY = b"k" * 32
OFFSETS = {"access": 42, "permission": 7}


def _engine(n: int = 30) -> Engine:
    engine = Engine()
    for i in range(n):
        engine.process(Event(kind="access", event_id=f"e{i}", ts=1.79e9 + i * 60, principal_id=f"u-{i % 5}",
                             action="read", resource_id=f"r{i % 3}", records=1 + i % 4))
    return engine


class Boom:
    """Unpickling this creates a marker file: proof that a refused snapshot was never unpickled."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> Any:
        return (Path.touch, (Path(self.marker),))


def _signed(body: dict[str, Any], key: bytes = KEY) -> bytes:
    raw = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    return snapshot.MAGIC + snapshot._sign(key, raw).encode() + b"\n" + raw


def _bomb(tmp_path: Path) -> tuple[bytes, Path]:
    marker = tmp_path / "unpickled"
    return zlib.compress(pickle.dumps(Boom(str(marker)))), marker


def test_round_trip_keeps_state_and_offsets():
    engine = _engine()
    snap = snapshot.encode(engine, OFFSETS, 2, 5, KEY, "g", chunk_bytes=1000)
    assert len(snap.chunks) > 1
    manifest = snapshot.read_manifest(snap.manifest, KEY)
    assert (manifest["offsets"], manifest["partition"], manifest["generation"], manifest["group"]) == (
        OFFSETS, 2, 5, "g")
    restored = snapshot.decode(manifest, list(snap.chunks))
    assert {p: v.n_events for p, v in restored.profiles.items()} == {p: v.n_events for p, v in engine.profiles.items()}
    assert restored.process(Event(kind="access", event_id="x", ts=1.8e9, principal_id="u-1", action="read")) == []


def test_round_trip_keeps_the_partitions_open_incidents():
    correlator = Correlator()
    correlator.add({"alert_id": "privilege:u-1:e1", "ts": "2026-11-26T09:00:00Z", "principal_id": "u-1",
                    "detector": "privilege", "severity": 70.0, "level": "high", "title": "t", "reasons": ["r"],
                    "evidence_event_ids": ["e1"]}, partition=2)
    snap = snapshot.encode(_engine(), OFFSETS, 2, 5, KEY, "g", incidents=correlator.export(2))
    engine, incidents = snapshot.decode_state(snapshot.read_manifest(snap.manifest, KEY), list(snap.chunks))
    assert isinstance(engine, Engine)
    assert [(i.principal_id, i.alert_ids, i.partition) for i in incidents] == [("u-1", ["privilege:u-1:e1"], 2)]


def test_format_2_snapshots_the_engine_alone_still_restore():
    """What the previous release wrote: the pickled engine as the payload, format 2."""
    engine = _engine()
    payload = zlib.compress(pickle.dumps(engine), 1)
    body = {**snapshot.versions(), "format": 2, "group": "g", "partition": 0, "generation": 1,
            "offsets": OFFSETS, "chunks": [hashlib.sha256(payload).hexdigest()], "payload_bytes": len(payload)}
    restored, incidents = snapshot.decode_state(snapshot.read_manifest(_signed(body), KEY), [payload])
    assert incidents == [] and restored.n_principals() == engine.n_principals()


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1:]


def test_flipped_byte_in_a_chunk_is_refused():
    snap = snapshot.encode(_engine(), OFFSETS, 0, 1, KEY, chunk_bytes=1000)
    manifest = snapshot.read_manifest(snap.manifest, KEY)
    chunks: list[bytes | None] = list(snap.chunks)
    chunks[1] = _flip(snap.chunks[1], 10)
    with pytest.raises(SnapshotError, match="chunk 1 does not match"):
        snapshot.decode(manifest, chunks)
    with pytest.raises(SnapshotError, match="incomplete"):
        snapshot.decode(manifest, [*snap.chunks[:-1], None])


def test_flipped_byte_in_manifest_body_or_tag_is_refused():
    snap = snapshot.encode(_engine(), OFFSETS, 0, 1, KEY)
    body_at = snap.manifest.index(b'"offsets"') + 3
    with pytest.raises(SnapshotError, match="signature does not verify"):
        snapshot.read_manifest(_flip(snap.manifest, body_at), KEY)
    with pytest.raises(SnapshotError, match="signature does not verify"):
        snapshot.read_manifest(_flip(snap.manifest, len(snapshot.MAGIC_KEYED) + 5), KEY)


def test_wrong_key_is_refused():
    snap = snapshot.encode(_engine(), OFFSETS, 0, 1, KEY)
    with pytest.raises(SnapshotError, match="another key"):
        snapshot.read_manifest(snap.manifest, b"x" * 32)
    with pytest.raises(SnapshotError, match="too short"):
        snapshot.read_manifest(snap.manifest, b"short")


def test_forged_manifests_without_or_with_empty_signature_never_unpickle(tmp_path):
    bomb, marker = _bomb(tmp_path)
    import hashlib

    body = {**snapshot.versions(), "group": "", "partition": 0, "generation": 9, "offsets": OFFSETS,
            "chunks": [hashlib.sha256(bomb).hexdigest()], "payload_bytes": len(bomb)}
    raw = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    forged = [
        snapshot.MAGIC + raw,  # no signature at all
        snapshot.MAGIC + b"\n" + raw,  # empty signature
        snapshot.MAGIC + b"0" * 64 + b"\n" + raw,  # a made-up one
        orjson.dumps({"body": body, "hmac": ""}),  # the old envelope, signature-less
        raw,
    ]
    for manifest in forged:
        with pytest.raises(SnapshotError):
            snapshot.read_manifest(manifest, KEY)
    # a bare pickle where the manifest should be: refused without being unpickled
    with pytest.raises(SnapshotError, match="bad magic"):
        snapshot.read_manifest(pickle.dumps(Boom(str(marker))), KEY)
    assert not marker.exists()


def test_newer_format_or_other_river_version_is_refused_even_when_signed():
    snap = snapshot.encode(_engine(), OFFSETS, 0, 1, KEY)
    body = orjson.loads(snap.manifest.split(b"\n", 3)[3])
    for change in ({"format": snapshot.FORMAT + 1}, {"river": "0.0.1"}, {"model": "9.9.9"},
                   {"privwatch": "99.0.0"}):
        with pytest.raises(SnapshotError, match="foreign snapshot versions"):
            snapshot.read_manifest(_signed(body | change), KEY)
    patch = body["privwatch"].rsplit(".", 1)[0] + ".999"
    assert snapshot.read_manifest(_signed(body | {"privwatch": patch}), KEY)["generation"] == 1


def test_signed_manifest_with_a_swapped_chunk_is_refused_before_unpickling(tmp_path):
    bomb, marker = _bomb(tmp_path)
    snap = snapshot.encode(_engine(), OFFSETS, 0, 1, KEY)
    manifest = snapshot.read_manifest(snap.manifest, KEY)
    with pytest.raises(SnapshotError, match="does not match its hash"):
        snapshot.decode(manifest, [bomb])
    assert not marker.exists()


# -- the store, on an in-memory "topic" ---------------------------------------------------------------
@dataclass
class _Rec:
    key: bytes
    value: bytes | None
    offset: int


class _Future:
    is_done = True

    def succeeded(self) -> bool:
        return True


class FakeTopic:
    """A state topic: an append-only log per partition; the producer and reader fakes share it."""

    def __init__(self, name: str = "state", partitions: int = 3) -> None:
        self.name = name
        self.logs: dict[int, list[_Rec]] = {p: [] for p in range(partitions)}

    # producer side
    def send(self, topic: str, key: bytes, value: bytes | None, partition: int) -> _Future:
        log = self.logs[partition]
        log.append(_Rec(key, value, len(log)))
        return _Future()

    def partitions_for(self, topic: str) -> set[int]:
        return set(self.logs)

    def flush(self, timeout: float | None = None) -> None:
        pass

    def reader(self) -> FakeReader:
        return FakeReader(self)

    def latest(self, partition: int) -> dict[bytes, bytes | None]:
        return {r.key: r.value for r in self.logs[partition]}


class FakeReader:
    def __init__(self, topic: FakeTopic) -> None:
        self.t = topic
        self.pos = 0
        self.tp: TopicPartition | None = None

    def topics(self) -> set[str]:
        return {self.t.name}

    def partitions_for_topic(self, name: str) -> set[int] | None:
        return set(self.t.logs) if name == self.t.name else None

    def assign(self, tps: list[TopicPartition]) -> None:
        self.tp = tps[0]

    def seek_to_beginning(self, tp: TopicPartition) -> None:
        self.pos = 0

    def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: len(self.t.logs[tp.partition]) for tp in tps}

    def position(self, tp: TopicPartition) -> int:
        return self.pos

    def poll(self, timeout_ms: int = 0) -> dict[TopicPartition, list[_Rec]]:
        assert self.tp is not None
        records = self.t.logs[self.tp.partition][self.pos:self.pos + 5]
        self.pos += len(records)
        return {self.tp: records}

    def close(self) -> None:
        pass


def _store(topic: FakeTopic, refusals: list[str] | None = None, key: bytes = KEY) -> StateStore:
    sink = refusals if refusals is not None else []
    return StateStore(topic, topic.reader, topic.name, "grp", key, refused=sink.append, chunk_bytes=2000)


def _counts(engine: Engine) -> dict[str, int]:
    return {p: v.n_events for p, v in engine.profiles.items()}


def test_store_restores_the_newest_snapshot_and_its_offsets():
    topic = FakeTopic()
    store = _store(topic)
    store.restore(4)  # nothing there: cold
    old, new = _engine(10), _engine(25)
    store.write(4, old, {"access": 10, "permission": 0})
    store.write(4, new, {"access": 25, "permission": 0})
    restored = _store(topic).restore(4)
    assert restored is not None and restored.seq == 2
    assert restored.offsets == {"access": 25, "permission": 0}
    assert _counts(restored.engine) == _counts(new)
    assert _store(topic).restore(1) is None  # same state partition (4 % 3), other input partition


def test_store_falls_back_to_the_previous_generation_when_the_newest_is_refused(caplog):
    topic = FakeTopic()
    store = _store(topic)
    store.restore(0)
    store.write(0, _engine(10), {"access": 10, "permission": 0})
    store.write(0, _engine(25), {"access": 25, "permission": 0})
    # corrupt the newest generation's first chunk in place (a later record with the same key)
    topic.send("state", b"grp/p0/g2/c0", b"garbage", 0)
    refusals: list[str] = []
    with caplog.at_level(logging.ERROR, logger="stream.state.store"):
        restored = _store(topic, refusals).restore(0)
    assert restored is not None and restored.seq == 1 and restored.offsets["access"] == 10
    assert refusals == ["refused"]
    assert "snapshot refused partition=0 generation=2" in caplog.text
    # and a signature-less forgery in both manifest slots: cold start, both refused
    for slot in (0, 1):
        topic.send("state", f"grp/p0/manifest{slot}".encode(), pickle.dumps({"x": 1}), 0)
    refusals.clear()
    assert _store(topic, refusals).restore(0) is None
    assert refusals == ["refused", "refused"]


def test_store_with_another_key_refuses_everything():
    topic = FakeTopic()
    store = _store(topic)
    store.restore(0)
    store.write(0, _engine(10), {"access": 10, "permission": 0})
    refusals: list[str] = []
    assert _store(topic, refusals, key=b"z" * 32).restore(0) is None
    assert refusals == ["refused"]


def test_after_a_refused_newest_the_next_write_reuses_its_slot_and_keeps_the_fallback():
    topic = FakeTopic()
    store = _store(topic)
    store.restore(0)
    for n in (10, 20):
        store.write(0, _engine(n), {"access": n, "permission": 0})
    topic.send("state", b"grp/p0/manifest0", b"junk", 0)  # generation 2's manifest slot
    second = _store(topic)
    assert second.restore(0).seq == 1  # type: ignore[union-attr]
    second.write(0, _engine(30), {"access": 30, "permission": 0})
    restored = _store(topic).restore(0)
    assert restored is not None and (restored.seq, restored.offsets["access"]) == (2, 30)


def test_writing_generation_seq_tombstones_chunks_older_than_seq_minus_one():
    topic = FakeTopic()
    store = _store(topic)
    store.restore(0)
    engines = [_engine(n) for n in (10, 20, 30, 40)]
    for i, engine in enumerate(engines, start=1):
        store.write(0, engine, {"access": i, "permission": 0})
    latest = topic.latest(0)
    live = {k.decode().split("/")[2] for k, v in latest.items() if b"/g" in k and v is not None}
    dead = {k.decode().split("/")[2] for k, v in latest.items() if b"/g" in k and v is None}
    assert live == {"g3", "g4"}
    assert dead == {"g1", "g2"}
    # a restarted writer learns what the log holds and keeps tombstoning from there
    again = _store(topic)
    assert again.restore(0).seq == 4  # type: ignore[union-attr]
    again.write(0, _engine(5), {"access": 5, "permission": 0})
    latest = topic.latest(0)
    assert all(v is None for k, v in latest.items() if k.startswith(b"grp/p0/g3/"))
    assert all(v is not None for k, v in latest.items() if k.startswith((b"grp/p0/g4/", b"grp/p0/g5/")))


def test_missing_state_topic_is_a_topology_error():
    topic = FakeTopic()
    store = StateStore(topic, topic.reader, "nope", "grp", KEY)
    with pytest.raises(TopologyError, match="state topic 'nope' does not exist"):
        store.check(timeout_s=0.1)


def test_checkpoint_commits_only_what_a_snapshot_covers():
    cp = Checkpoint(covered_only=True)
    tp = TopicPartition("a", 0)
    cp.store(tp, 99)
    assert cp.pending() == {}
    cp.cover(tp, 50)
    assert cp.pending() == {tp: 50}
    plain = Checkpoint()
    plain.store(tp, 99)
    assert plain.pending() == {tp: 100}


def test_state_benchmark_small():
    result = run_state_benchmark(n_principals=2_000)
    assert result["principals"] == 2_000 and result["restored_ok"]
    assert result["snapshot_bytes"] > 0 and result["bytes_per_principal"] == pytest.approx(
        result["snapshot_bytes"] / 2_000, rel=0.01)
    assert result["write_s"] >= 0 and result["restore_s"] >= 0
    assert result["background_payload_identical"] and result["child_s"] > 0 and result["fork_s"] >= 0


_GC_SEEN: list[tuple[str, bool]] = []


def _note_gc_on_load() -> str:
    _GC_SEEN.append(("load", gc.isenabled()))
    return "loaded"


class NotesGC:
    """Records whether the cyclic collector is on when it is pickled and when it is unpickled."""

    def __reduce__(self) -> Any:
        _GC_SEEN.append(("dump", gc.isenabled()))
        return (_note_gc_on_load, ())


def test_restores_unpickle_with_the_collector_paused_and_turn_it_back_on():
    _GC_SEEN.clear()
    snap = snapshot.encode(_engine(), OFFSETS, 0, 1, KEY, "g", incidents=[NotesGC()])
    manifest = snapshot.read_manifest(snap.manifest, KEY)
    engine, incidents = snapshot.decode_state(manifest, list(snap.chunks))
    assert incidents == ["loaded"] and engine.n_principals() == 5
    assert ("load", False) in _GC_SEEN and gc.isenabled()


def test_keys_rotate_by_id_and_an_unknown_id_is_refused():
    old, new = b"o" * 32, b"n" * 32
    by_old = snapshot.encode(_engine(5), OFFSETS, 0, 1, old, key_id="2025")
    by_new = snapshot.encode(_engine(5), OFFSETS, 0, 2, new, key_id="2026")
    keys = {"2025": old, "2026": new}
    assert snapshot.read_manifest(by_old.manifest, keys)["key_id"] == "2025"
    assert snapshot.read_manifest(by_new.manifest, keys)["generation"] == 2
    with pytest.raises(SnapshotError, match="key id '2025', which is not configured"):
        snapshot.read_manifest(by_old.manifest, {"2026": new})
    # a manifest claiming the new key's id but signed with the old key does not verify
    forged = by_old.manifest.replace(b"/2\n2025\n", b"/2\n2026\n", 1)
    with pytest.raises(SnapshotError, match="does not verify"):
        snapshot.read_manifest(forged, keys)
    # manifests from before key ids verify with any configured key
    legacy = _signed(orjson.loads(by_old.manifest.split(b"\n", 3)[3]), key=old)
    assert snapshot.read_manifest(legacy, keys)["generation"] == 1


def test_a_restore_refuses_a_manifest_older_than_the_committed_generation(caplog):
    topic = FakeTopic()
    refusals: list[str] = []
    writer = _store(topic, refusals)
    for generation in range(3):
        written = writer.write(1, _engine(10 + generation), {"access": 10 * generation})
        assert written.seq == generation + 1
    old_manifests = topic.latest(1)
    # the two newest manifests are tombstoned and generation 1's manifest re-published
    first = snapshot.encode(_engine(10), {"access": 0}, 1, 1, KEY, "grp", chunk_bytes=2000)
    for key in [k for k in old_manifests if b"manifest" in k]:
        topic.send("state", key, None, 1)
    topic.send("state", b"grp/p1/manifest1", first.manifest, 1)
    for i, chunk in enumerate(first.chunks):
        topic.send("state", f"grp/p1/g1/c{i}".encode(), chunk, 1)
    trusting = StateStore(topic, topic.reader, "state", "grp", KEY, refused=refusals.append, chunk_bytes=2000)
    assert trusting.restore(1) is not None  # without the committed generation, generation 1 looks fine
    anchored = StateStore(topic, topic.reader, "state", "grp", KEY, refused=refusals.append, chunk_bytes=2000,
                          committed=lambda p: 3)
    with caplog.at_level(logging.ERROR):
        assert anchored.restore(1) is None
    assert "rollback: generation 1 is older than generation 3" in caplog.text
    assert anchored.seq[1] == 3 and refusals == ["refused"]
    for key in [k for k in topic.latest(1) if b"manifest" in k]:
        topic.send("state", key, None, 1)
    assert anchored.restore(1) is None and refusals == ["refused", "missing"]
