"""Snapshot encoding and the state store without a broker: round trip, tampering, fallback, tombstones."""

from __future__ import annotations

import gc
import hashlib
import pickle
import zlib
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import TopicPartition
from state_fakes import FakeTopic

from detectors.engine import Engine
from detectors.events import Event
from stream.alertmanager.correlate import Correlator
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
