"""State follows the principal: input partitions grown 3 -> 6, each principal's state moved to the partition
its key now hashes to, nothing lost (in memory; the same store code runs on the broker)."""

from __future__ import annotations

import pytest
from detector_streams import routine
from state_fakes import FakeTopic

from detectors.engine import Engine
from detectors.portable import export_principal
from stream.errors import TopologyError
from stream.state import records
from stream.state.repartition import partition_of, repartition
from stream.state.store import Anchor, StateStore

KEY = b"k" * 32
EVENTS = routine(seed=4, days=8, per_day=15)
INPUTS = ["access", "permission"]


def store(topic: FakeTopic, anchors: dict[int, Anchor], partitions: int) -> StateStore:
    return StateStore(topic, topic.reader, topic.name, "grp", KEY, chunk_bytes=4000, committed=anchors.get,
                      partitions=partitions)


def grown() -> tuple[FakeTopic, dict[int, Anchor], dict[int, Engine]]:
    """Three partitions' engines fed their principals' events, each checkpointed and committed."""
    topic, anchors = FakeTopic(), {}
    writer = store(topic, anchors, 3)
    engines = {p: Engine() for p in range(3)}
    for p, engine in engines.items():
        engine.track_changes(writer.log(p).write)
    for event in EVENTS[:2500]:
        engines[partition_of(event.principal_id, 3)].process(event)
    for p, engine in engines.items():
        cut = writer.start(p, engine, {"access": 100 + p, "permission": 7}, [])
        assert writer.logs[p].drain(float("inf"))
        writer.seal(p)
        writer.logs[p].finish()
        anchors[p] = Anchor(cut.generation, 3, 0)
        writer.committed_at(p, cut.generation)
    return topic, anchors, engines


def state_of(engine: Engine, pid: str) -> bytes:
    state = export_principal(engine, pid)
    assert state is not None
    return records.encode_state(state)


def test_growing_3_to_6_partitions_moves_every_principal_with_its_baselines() -> None:
    topic, anchors, engines = grown()
    with pytest.raises(TopologyError):  # the service refuses to start on the old state with 6 partitions
        store(topic, anchors, 6).restore(0, Engine)
    moved = repartition(store(topic, anchors, 3), store(topic, anchors, 6), Engine, INPUTS, lambda: None,
                        shared=False)
    assert sorted(moved) == list(range(6))
    assert {q: m.offsets for q, m in moved.items()} == {
        0: {"access": 100, "permission": 7}, 1: {"access": 101, "permission": 7},
        2: {"access": 102, "permission": 7}, 3: {"access": 0, "permission": 0},
        4: {"access": 0, "permission": 0}, 5: {"access": 0, "permission": 0}}
    assert {q: m.shared_from for q, m in moved.items()} == {q: q % 3 for q in range(6)}  # each its own copy
    anchors.update((q, m.anchor) for q, m in moved.items())  # what the group's commit names now
    reader = store(topic, anchors, 6)
    everyone = {pid: p for p, engine in engines.items() for pid in engine.profiles}
    for q in range(6):
        back = reader.restore(q, Engine)
        assert back is not None and back.offsets == moved[q].offsets and back.rebuild == []
        mine = {pid for pid, p in everyone.items() if partition_of(pid, 6) == q}
        assert set(back.engine.profiles) == mine and mine
        for pid in mine:  # the same state, byte for byte, as the old partition held
            assert state_of(back.engine, pid) == state_of(engines[everyone[pid]], pid)
        assert back.engine.watermark == engines[q % 3].watermark  # the peer groups' and organisation's too


def test_a_repartition_not_committed_leaves_the_old_state_restorable_and_can_run_again() -> None:
    topic, anchors, engines = grown()
    repartition(store(topic, anchors, 3), store(topic, anchors, 6), Engine, INPUTS, lambda: None)
    old = store(topic, anchors, 3)  # the anchors were never committed: the old state is what counts
    for p, engine in engines.items():
        back = old.restore(p, Engine)
        assert back is not None and set(back.engine.profiles) == set(engine.profiles)
    again = repartition(store(topic, anchors, 3), store(topic, anchors, 6), Engine, INPUTS, lambda: None)
    anchors.update((q, m.anchor) for q, m in again.items())
    total = sum(len(store(topic, anchors, 6).restore(q, Engine).engine.profiles)  # type: ignore[union-attr]
                for q in range(6))
    assert total == sum(len(e.profiles) for e in engines.values())


def test_with_shared_baselines_each_old_partitions_shared_state_goes_to_one_new_partition() -> None:
    topic, anchors, _ = grown()
    moved = repartition(store(topic, anchors, 3), store(topic, anchors, 6), Engine, INPUTS, lambda: None)
    # the sums over the partitions' partials (detectors.commons) stay what they were: nothing counted twice
    assert {q: m.shared_from for q, m in moved.items()} == {0: 0, 1: 1, 2: 2, 3: -1, 4: -1, 5: -1}
