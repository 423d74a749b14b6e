"""The changelog's crash safety on the real broker (the same cases as tests/test_state_changelog.py's
in-memory topic): a checkpoint left half written, or written but never committed, restores the
committed generation, and what it left is tombstoned by the next checkpoint; a record of an older
generation re-published in place of the newest is refused; signatures are checked on what the broker
returns."""

from __future__ import annotations

from typing import Any

import pytest
from detector_streams import routine
from kafka import KafkaConsumer, KafkaProducer
from state_helpers import latest_records

from detectors.engine import Engine
from detectors.events import Event
from stream.state import records
from stream.state.changelog import Cut
from stream.state.store import Anchor, Restored, StateStore

pytestmark = pytest.mark.integration

KEY = b"k" * 32
EVENTS = routine(seed=5, days=8, per_day=15)
P = 1  # the input partition under test (state topic partition 1 of 3)


class Broker:
    """A state topic on the real broker, a producer, and the group's committed anchors."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
        self.anchors: dict[int, Anchor] = {}
        self.refusals: list[str] = []

    def reader(self) -> KafkaConsumer:
        return KafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False)

    def store(self) -> StateStore:
        return StateStore(self.producer, self.reader, self.topic, "grp", KEY, refused=self.refusals.append,
                          chunk_bytes=4000, committed=self.anchors.get, partitions=3)

    def latest(self, prefix: bytes) -> dict[bytes, bytes | None]:
        """Each key's latest value under ``prefix`` on the state topic partition (as compaction keeps it)."""
        return latest_records(self.bootstrap, self.topic, P, prefix)

    def close(self) -> None:
        self.producer.close()


@pytest.fixture
def broker(kafka_bootstrap: str, fresh_topics: Any) -> Any:
    topics = fresh_topics(n_partitions=3, names=("state",))
    b = Broker(kafka_bootstrap, topics["state"])
    yield b
    b.close()


def tracked(store: StateStore, engine: Engine | None = None) -> Engine:
    engine = engine or Engine()
    engine.track_changes(store.log(P).write)
    return engine


def checkpoint(broker: Broker, store: StateStore, engine: Engine, offset: int, commit: bool = True) -> Cut:
    """A whole checkpoint as the service writes it: cut, records, seal, wait for the broker's
    acknowledgements, then (``commit``) the offsets' commit naming it."""
    cut = store.start(P, engine, {"a": offset}, [])
    partition_log = store.logs[P]
    assert partition_log.drain(float("inf"))
    store.seal(P)
    broker.producer.flush(30)
    assert partition_log.durable() is True
    partition_log.finish()
    if commit:
        broker.anchors[P] = Anchor(cut.generation, 3, partition_log.lineage)
        store.committed_at(P, cut.generation)
    return cut


def counts(engine: Engine) -> dict[str, int]:
    return {pid: profile.n_events for pid, profile in engine.profiles.items()}


def feed(engine: Engine, events: list[Event]) -> list[str]:
    return [a["alert_id"] for e in events for a in engine.process(e)]


def restore(broker: Broker) -> Restored | None:
    return broker.store().restore(P, Engine)


def test_a_half_written_or_uncommitted_checkpoint_restores_the_committed_generation(broker: Broker) -> None:
    store = broker.store()
    engine = tracked(store)
    feed(engine, EVENTS[:1200])
    checkpoint(broker, store, engine, 1200)
    at_one = counts(engine)

    feed(engine, EVENTS[1200:1800])
    store.start(P, engine, {"a": 1800}, [])
    half = []
    for _ in range(5):  # half written, no manifest, acknowledged by the broker: then the process dies
        pid = engine.capture_first.pop()
        store.logs[P].write(pid)
        half.append(pid)
    broker.producer.flush(30)
    back = restore(broker)
    assert back is not None and back.seq == 1 and counts(back.engine) == at_one
    assert broker.refusals == []

    # the new owner goes on from generation 1; its first checkpoint tombstones what the crash left
    store = broker.store()
    owner = store.restore(P, Engine)
    assert owner is not None
    engine = tracked(store, owner.engine)
    second = checkpoint(broker, store, engine, 1200, commit=False)  # written and acknowledged, never committed
    assert second.generation == 3  # above the half-written generation 2
    back = restore(broker)
    assert back is not None and back.seq == 1 and counts(back.engine) == at_one
    left = {key: value for key, value in broker.latest(b"grp/u/").items()
            if key.decode().split("/")[2] in half}
    assert left and not [key for key, value in left.items()
                         if value is not None and records.peek(value).generation == 2]  # type: ignore[union-attr]

    feed(engine, EVENTS[1200:1800])
    third = checkpoint(broker, store, engine, 1800)
    back = restore(broker)
    assert back is not None and back.seq == third.generation and counts(back.engine) == counts(engine)
    assert feed(back.engine, EVENTS[1800:]) == feed(engine, EVENTS[1800:])
    assert broker.refusals == []


def test_an_older_record_re_published_on_the_broker_is_a_rollback_and_refused(broker: Broker) -> None:
    store = broker.store()
    engine = tracked(store)
    feed(engine, EVENTS[:1000])
    checkpoint(broker, store, engine, 1000)
    who = EVENTS[1000].principal_id
    prefix = f"grp/u/{who}/".encode()
    old = {k: v for k, v in broker.latest(prefix).items() if v}
    feed(engine, [e for e in EVENTS[1000:1600] if e.principal_id == who])
    checkpoint(broker, store, engine, 1600)
    feed(engine, [e for e in EVENTS[1600:2200] if e.principal_id == who])
    checkpoint(broker, store, engine, 2200)  # generation 3 wrote the slot generation 1 had
    for key, value in old.items():  # generation 1's record put back, signature and all
        broker.producer.send(broker.topic, key=key, value=value, partition=P)
    broker.producer.flush(30)
    assert restore(broker) is None
    assert broker.refusals == ["refused"]
