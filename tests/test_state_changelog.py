"""Incremental state on an in-memory state topic: principal records written as they change, restores at
the committed generation, crashes mid-checkpoint, rollbacks and tampering refused, forgotten principals,
and snapshots of the previous format."""

from __future__ import annotations

import logging
import pickle

import pytest
from detector_streams import routine
from state_fakes import FakeTopic

from detectors.engine import Engine, EngineConfig
from detectors.events import Event
from stream.errors import TopologyError
from stream.state import records, snapshot
from stream.state.changelog import Cut
from stream.state.store import Anchor, Restored, StateStore

KEY = b"k" * 32
EVENTS = routine(seed=3, days=8, per_day=15)


class Group:
    """The consumer group's committed anchors (what the offsets' metadata would name)."""

    def __init__(self, partitions: int = 3) -> None:
        self.anchors: dict[int, Anchor] = {}
        self.partitions = partitions

    def store(self, topic: FakeTopic, key: bytes = KEY, refusals: list[str] | None = None) -> StateStore:
        sink = refusals if refusals is not None else []
        return StateStore(topic, topic.reader, topic.name, "grp", key, refused=sink.append, chunk_bytes=4000,
                          committed=self.anchors.get, partitions=self.partitions)


def tracked(store: StateStore, p: int, engine: Engine | None = None) -> Engine:
    engine = engine or Engine()
    engine.track_changes(store.log(p).write)
    return engine


def checkpoint(store: StateStore, group: Group, p: int, engine: Engine, offset: int, commit: bool = True) -> Cut:
    """A whole checkpoint: cut, write every changed principal, seal, acknowledge, commit."""
    cut = store.start(p, engine, {"a": offset}, [])
    partition_log = store.logs[p]
    assert partition_log.drain(float("inf"))
    store.seal(p)
    assert partition_log.durable()
    partition_log.finish()
    if commit:
        group.anchors[p] = Anchor(cut.generation, group.partitions, partition_log.lineage)
        store.committed_at(p, cut.generation)
    return cut


def counts(engine: Engine) -> dict[str, int]:
    return {pid: profile.n_events for pid, profile in engine.profiles.items()}


def restored(group: Group, topic: FakeTopic, p: int = 1, refusals: list[str] | None = None) -> Restored | None:
    return group.store(topic, refusals=refusals).restore(p, Engine)


def feed(engine: Engine, events: list[Event]) -> list[str]:
    return [a["alert_id"] for e in events for a in engine.process(e)]


def test_a_checkpoint_writes_the_changed_principals_and_a_restore_goes_on_as_the_original() -> None:
    topic, group = FakeTopic(), Group()
    store = group.store(topic)
    engine = tracked(store, 1)
    feed(engine, EVENTS[:1500])
    first = checkpoint(store, group, 1, engine, 1500)
    assert len(first.written) == engine.n_principals() > 10
    one = EVENTS[1500].principal_id
    feed(engine, [e for e in EVENTS[1500:2200] if e.principal_id == one])
    second = checkpoint(store, group, 1, engine, 2200)
    assert second.written == [one]  # only what changed
    back = restored(group, topic)
    assert back is not None and (back.seq, back.offsets, back.principals) == (2, {"a": 2200}, engine.n_principals())
    assert back.rebuild == [] and counts(back.engine) == counts(engine)
    assert feed(back.engine, EVENTS[2200:]) == feed(engine, EVENTS[2200:])


def test_principals_are_written_as_they_were_at_the_cut_even_when_their_events_come_first() -> None:
    topic, group = FakeTopic(), Group()
    store = group.store(topic)
    engine = tracked(store, 1)
    feed(engine, EVENTS[:1000])
    at_cut = counts(engine)
    cut = store.start(1, engine, {"a": 1000}, [])
    feed(engine, EVENTS[1000:1400])  # the loop goes on before any slice is written
    assert store.logs[1].drain(float("inf"))
    store.seal(1)
    store.logs[1].finish()
    group.anchors[1] = Anchor(cut.generation, 3, 0)
    store.committed_at(1, cut.generation)
    back = restored(group, topic)
    assert back is not None and counts(back.engine) == at_cut
    assert engine.changed == {e.principal_id for e in EVENTS[1000:1400]}


def test_a_crash_mid_checkpoint_restores_the_committed_generation_and_tombstones_what_it_left() -> None:
    topic, group = FakeTopic(), Group()
    store = group.store(topic)
    engine = tracked(store, 1)
    feed(engine, EVENTS[:1200])
    checkpoint(store, group, 1, engine, 1200)
    at_one = counts(engine)
    feed(engine, EVENTS[1200:1800])
    store.start(1, engine, {"a": 1800}, [])
    for _ in range(5):  # half written, no manifest: then the process dies
        store.logs[1].write(engine.capture_first.pop())
    back = restored(group, topic)
    assert back is not None and back.seq == 1 and counts(back.engine) == at_one
    # a manifest written but its offsets never committed: the same
    engine = tracked(store, 1, Engine())
    store2 = group.store(topic)
    again = store2.restore(1, Engine)
    assert again is not None
    engine = tracked(store2, 1, again.engine)
    feed(engine, EVENTS[1200:1800])
    checkpoint(store2, group, 1, engine, 1800, commit=False)
    back = restored(group, topic)
    assert back is not None and back.seq == 1 and counts(back.engine) == at_one
    # the next committed checkpoint tombstones the records the crash left beyond generation 1
    store3 = group.store(topic)
    third = store3.restore(1, Engine)
    assert third is not None and store3.logs[1]._stale
    engine = tracked(store3, 1, third.engine)
    feed(engine, EVENTS[1200:1300])
    cut = checkpoint(store3, group, 1, engine, 1300)
    assert cut.generation > 3
    back = restored(group, topic)
    assert back is not None and counts(back.engine) == counts(engine)


def _latest(topic: FakeTopic, p: int, prefix: bytes) -> dict[bytes, bytes | None]:
    return {k: v for k, v in topic.latest(p).items() if k.startswith(prefix)}


def test_an_older_record_in_place_of_the_newest_is_a_rollback_and_refused(caplog) -> None:
    topic, group = FakeTopic(), Group()
    store = group.store(topic)
    engine = tracked(store, 1)
    feed(engine, EVENTS[:1000])
    checkpoint(store, group, 1, engine, 1000)
    who = EVENTS[1000].principal_id
    old = {k: v for k, v in _latest(topic, 1, f"grp/u/{who}/".encode()).items() if v}
    feed(engine, [e for e in EVENTS[1000:1600] if e.principal_id == who])
    checkpoint(store, group, 1, engine, 1600)
    for key in _latest(topic, 1, f"grp/u/{who}/".encode()):
        topic.send("state", key, None, 1)  # the newest record deleted, the older one re-published
    for key, value in old.items():
        topic.send("state", key, value, 1)
    refusals: list[str] = []
    with caplog.at_level(logging.ERROR, logger="stream.state.store"):
        assert restored(group, topic, refusals=refusals) is None
    assert refusals == ["refused"] and "a rollback" in caplog.text


def test_a_tampered_record_or_another_key_is_refused_and_never_unpickled() -> None:
    topic, group = FakeTopic(), Group()
    store = group.store(topic)
    engine = tracked(store, 1)
    feed(engine, EVENTS[:600])
    checkpoint(store, group, 1, engine, 600)
    key, value = next((k, v) for k, v in _latest(topic, 1, b"grp/u/").items() if v)
    topic.send("state", key, value[:-3] + bytes([value[-3] ^ 1]) + value[-2:], 1)
    refusals: list[str] = []
    assert restored(group, topic, refusals=refusals) is None and refusals == ["refused"]
    with pytest.raises(Exception, match="does not verify"):
        records.open_record(topic.latest(1)[key] or b"", key, {"1": KEY})
    refusals.clear()
    other = Group()
    other.anchors = group.anchors
    assert other.store(FakeTopic(), refusals=refusals).restore(1, Engine) is None  # nothing there at all
    assert refusals == ["refused"]  # the anchor names a generation the topic does not hold


def test_a_forgotten_principal_gets_a_record_saying_so_then_its_slots_are_tombstoned() -> None:
    topic, group = FakeTopic(), Group()
    store = group.store(topic)
    engine = tracked(store, 1, Engine(EngineConfig(idle_ttl_s=3 * 86_400.0, detectors=["volume", "novelty"])))
    early = [Event(kind="access", event_id="gone-1", ts=EVENTS[0].ts, principal_id="gone", action="read")]
    feed(engine, early + EVENTS[:300])
    checkpoint(store, group, 1, engine, 300)
    feed(engine, [e for e in EVENTS if e.ts > EVENTS[0].ts + 5 * 86_400][:300])  # the sweep forgets "gone"
    assert "gone" not in engine.profiles
    checkpoint(store, group, 1, engine, 600)
    values = [v for v in _latest(topic, 1, b"grp/u/gone/").values() if v]
    assert any(records.peek(v).forgotten for v in values)  # type: ignore[union-attr]
    back = restored(group, topic)
    assert back is not None and "gone" not in back.engine.profiles
    feed(engine, EVENTS[-5:])
    checkpoint(store, group, 1, engine, 605)
    assert set(_latest(topic, 1, b"grp/u/gone/").values()) == {None}


def test_a_whole_engine_snapshot_of_the_previous_format_restores_and_is_then_written_as_records() -> None:
    topic, group = FakeTopic(), Group()
    engine = Engine()
    feed(engine, EVENTS[:800])
    snap = snapshot.encode(engine, {"a": 800}, 1, 4, KEY, "grp", chunk_bytes=4000)
    for i, chunk in enumerate(snap.chunks):
        topic.send("state", f"grp/p1/g4/c{i}".encode(), chunk, 1)
    topic.send("state", b"grp/p1/manifest0", snap.manifest, 1)
    group.anchors[1] = Anchor(4)  # what that version's commits named: "g=4"
    store = group.store(topic)
    back = store.restore(1, Engine)
    assert back is not None and back.rewrite_all and counts(back.engine) == counts(engine)
    upgraded = tracked(store, 1, back.engine)
    upgraded.changed.update(upgraded.profiles)  # type: ignore[union-attr]
    cut = checkpoint(store, group, 1, upgraded, 800)
    assert cut.generation == 5 and len(cut.written) == engine.n_principals()
    again = restored(group, topic)
    assert again is not None and not again.rewrite_all and counts(again.engine) == counts(engine)


def test_without_a_committed_generation_the_newest_manifest_that_verifies_is_used() -> None:
    topic, group = FakeTopic(), Group()
    store = group.store(topic)
    engine = tracked(store, 1)
    feed(engine, EVENTS[:500])
    checkpoint(store, group, 1, engine, 500)
    feed(engine, EVENTS[500:900])
    checkpoint(store, group, 1, engine, 900)
    group.anchors.clear()  # the group's offsets expired
    back = restored(group, topic)
    assert back is not None and back.offsets == {"a": 900} and counts(back.engine) == counts(engine)


def test_state_written_for_another_partition_count_is_a_topology_error() -> None:
    topic, group = FakeTopic(), Group()
    store = group.store(topic)
    engine = tracked(store, 1)
    feed(engine, EVENTS[:200])
    checkpoint(store, group, 1, engine, 200)
    grown = Group(partitions=6)
    grown.anchors = group.anchors
    with pytest.raises(TopologyError, match="state repartition"):
        grown.store(topic).restore(1, Engine)


def test_a_detector_state_layout_that_cannot_be_read_is_named_for_a_rebuild(monkeypatch) -> None:
    topic, group = FakeTopic(), Group()
    store = group.store(topic)
    engine = tracked(store, 1)
    feed(engine, EVENTS[:700])
    checkpoint(store, group, 1, engine, 700)
    from detectors.volume import Volume

    monkeypatch.setattr(Volume, "state_version", Volume.state_version + 1)  # a newer layout, no migration
    back = restored(group, topic)
    assert back is not None and back.rebuild == ["volume"]
    volume = next(d for d in back.engine.detectors if d.name == "volume")
    assert not volume.own_ and not volume.peers_  # type: ignore[attr-defined]
    others = next(d for d in back.engine.detectors if d.name == "novelty")
    assert pickle.dumps(others.shared_state()) == pickle.dumps(
        next(d for d in engine.detectors if d.name == "novelty").shared_state())


def test_a_key_rotation_restores_with_the_old_key_and_the_next_checkpoint_signs_every_record_anew() -> None:
    topic, group = FakeTopic(), Group()
    store = group.store(topic)
    engine = tracked(store, 1)
    feed(engine, EVENTS[:1500])
    checkpoint(store, group, 1, engine, 1500)
    new_key = b"n" * 32
    rotated = StateStore(topic, topic.reader, topic.name, "grp", new_key, chunk_bytes=4000, key_id="2",
                         verify_keys={"1": KEY}, committed=group.anchors.get, partitions=group.partitions)
    back = rotated.restore(1, Engine)
    assert back is not None and counts(back.engine) == counts(engine)
    assert back.resign == set(engine.profiles)  # every record is the old key's
    again = tracked(rotated, 1, back.engine)
    assert again.changed is not None
    again.changed.update(back.resign)  # as Snapshots.track(also=...) does
    checkpoint(rotated, group, 1, again, 1500)
    only_new = StateStore(topic, topic.reader, topic.name, "grp", new_key, chunk_bytes=4000, key_id="2",
                          committed=group.anchors.get, partitions=group.partitions)
    final = only_new.restore(1, Engine)  # the old key dropped: nothing of it is needed any more
    assert final is not None and counts(final.engine) == counts(engine) and final.resign == set()
