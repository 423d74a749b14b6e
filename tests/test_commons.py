"""Shared baselines (issue 32): commons records signed and refused, the reader, staleness, relinking,
publishing, and the peer-normal first touch that sharing keeps from paging. No broker: fakes."""

from __future__ import annotations

import pickle
from dataclasses import replace
from typing import Any

import pytest
from detector_streams import DAY, HOUR, T0, last_of, pages, routine
from prometheus_client import CollectorRegistry

from detectors.calibrate import Calibrator
from detectors.commons import link
from detectors.engine import Engine, EngineConfig
from detectors.peers import PeerTouches
from stream.ops.metrics import COMMONS_REFUSALS, Metrics
from stream.service.commons import Commons, Publisher
from stream.service.commons_reader import CommonsReader
from stream.settings import Settings
from stream.state import commons as records
from stream.state.commons import CommonsRefused
from stream.state.partitions import Partitions
from stream.testing import Acked, MemoryTopic

KEY = b"commons-test-key-0123456789abcdef"
KEYS = {"1": KEY}
VERSIONS = {"novelty": 2}
GROUP = "g"


def groups(*members: str) -> PeerTouches:
    g = PeerTouches()
    for _ in members:
        g.join("peer:hr/partner")
    g.touch("peer:hr/partner", 7, day=100, previous=-1)
    return g


def sealed(p: int, partial: dict[str, Any], at: float = 1000.0, partitions: int = 4, key: bytes = KEY,
           key_id: str = "1", versions: dict[str, int] = VERSIONS) -> tuple[bytes, bytes]:
    return records.seal(partial, versions, key, key_id, GROUP, p, partitions, 1, at)


# -- records -------------------------------------------------------------------------------------
def test_a_partial_round_trips_with_its_partition_and_time() -> None:
    rkey, value = sealed(3, {"novelty": groups("a", "b")}, at=1234.5)
    assert records.parse_key(GROUP, rkey) == 3 and records.parse_key("other", rkey) is None
    partial = records.open_partial(value, rkey, KEYS, 4, VERSIONS)
    assert (partial.partition, partial.published_at) == (3, 1234.5)
    assert partial.aggregates["novelty"].size("peer:hr/partner") == 2


#: set when something was unpickled that must not have been
UNPICKLED: list[str] = []


def _boom() -> str:
    UNPICKLED.append("boom")
    return "boom"


class Boom:
    def __reduce__(self) -> tuple[Any, ...]:
        return _boom, ()


@pytest.mark.parametrize("case, reason", [
    ("other key", "bad_signature"), ("unknown key id", "unsigned"), ("tampered", "bad_signature"),
    ("bare pickle", "unsigned"), ("another key's record", "bad_signature"), ("partitions", "partitions"),
])
def test_refused_records_are_never_unpickled(case: str, reason: str) -> None:
    UNPICKLED.clear()
    rkey, value = sealed(1, {"novelty": Boom()}, key=b"x" * 32 if case == "other key" else KEY,
                         key_id="9" if case == "unknown key id" else "1",
                         partitions=6 if case == "partitions" else 4)
    if case == "tampered":
        value = value[:-3] + b"..."
    if case == "bare pickle":
        value = pickle.dumps({"novelty": Boom()})
    if case == "another key's record":
        rkey = records.record_key(GROUP, 2)  # a partition's record replayed as another's
    with pytest.raises(CommonsRefused) as refused:
        records.open_partial(value, rkey, KEYS, 4, VERSIONS)
    assert refused.value.reason == reason
    assert UNPICKLED == []


def test_the_refusal_reasons_are_the_metrics_labels() -> None:
    assert records.REASONS == COMMONS_REFUSALS


def test_a_detector_part_of_another_state_version_is_left_out() -> None:
    rkey, value = sealed(1, {"novelty": groups("a"), "drift": {"x": 1}}, versions={"novelty": 1, "drift": 1})
    partial = records.open_partial(value, rkey, KEYS, 4, {"novelty": 2, "drift": 1})
    assert set(partial.aggregates) == {"drift"} and partial.skipped == ("novelty",)


# -- the reader ----------------------------------------------------------------------------------
def reader_over(topic: MemoryTopic, refusals: list[str]) -> tuple[CommonsReader, Any, Any]:
    reader = CommonsReader(topic.reader, topic.name, GROUP, KEYS, 4, VERSIONS, refusals.append)
    consumer = topic.reader()
    return reader, consumer, reader.assign(consumer)


def test_the_reader_keeps_the_latest_partial_per_partition_and_counts_refusals() -> None:
    topic, refusals = MemoryTopic("commons", partitions=1), []
    for p, at in ((0, 10.0), (1, 11.0), (0, 12.0)):
        rkey, value = sealed(p, {"novelty": groups("a")}, at=at)
        topic.send("commons", rkey, value)
    topic.send("commons", records.record_key(GROUP, 2), b"PWR1 forged")
    topic.send("commons", b"other-group/commons/0", b"ignored: not this group's")
    reader, consumer, ends = reader_over(topic, refusals)
    reader.read_once(consumer, ends)
    _, latest = reader.latest()
    assert {p: partial.published_at for p, partial in latest.items()} == {0: 12.0, 1: 11.0}
    assert refusals == ["unsigned"] and reader.caught_up.is_set()
    topic.send("commons", records.record_key(GROUP, 1), None)  # a tombstone
    reader.read_once(consumer, ends)
    assert set(reader.latest()[1]) == {0}


def test_owned_partitions_are_held_undecoded_until_revoked() -> None:
    topic, refusals = MemoryTopic("commons", partitions=1), []
    reader, consumer, ends = reader_over(topic, refusals)
    reader.owned = frozenset({0})
    topic.send("commons", *sealed(0, {"novelty": groups("a")}, at=20.0))
    reader.read_once(consumer, ends)
    assert 0 not in reader.latest()[1]
    reader.owned = frozenset()  # revoked: its last partial serves until the new owner publishes
    reader.read_once(consumer, ends)
    assert reader.latest()[1][0].published_at == 20.0


# -- the loop's side -----------------------------------------------------------------------------
class FakeReader:
    def __init__(self) -> None:
        self.owned: frozenset[int] = frozenset()
        self.partials: dict[int, records.Partial] = {}

    def latest(self) -> tuple[int, dict[int, records.Partial]]:
        return 0, self.partials


class Future(Acked):
    def add_callback(self, fn: Any) -> None:
        fn(None)

    def add_errback(self, fn: Any) -> None:
        pass


class Producer:
    def __init__(self, topic: MemoryTopic) -> None:
        self.topic = topic

    def send(self, topic: str, key: bytes | None = None, value: bytes | None = None) -> Future:
        self.topic.send(topic, key, value)
        return Future()


def commons_with(engines: dict[int, Engine], **settings: Any) -> tuple[Commons, FakeReader, CollectorRegistry]:
    partitions = Partitions(Engine)
    partitions.engines.update(engines)
    registry = CollectorRegistry()
    commons = Commons(partitions, Metrics(registry), Settings(metrics_port=0, **settings))
    reader = FakeReader()
    commons.reader = reader  # type: ignore[assignment]
    return commons, reader, registry


def remote(p: int, at: float) -> records.Partial:
    return records.Partial(p, at, 1, {"novelty": ((groups("r1", "r2", "r3"), {}), Calibrator())})


def gauge(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_engines_see_each_other_and_fresh_remote_partials_and_relink_when_either_changes() -> None:
    a, b = Engine(), Engine()
    commons, reader, registry = commons_with({0: a, 1: b}, commons_max_age_s=120.0)
    reader.partials = {2: remote(2, 1000.0), 0: remote(0, 1000.0)}  # 0 is owned here: the live engine wins
    commons.tick(1010.0)
    assert reader.owned == {0, 1}
    assert len(a.others) == 2 and b.partial()["novelty"] in [o["novelty"] for o in a.others]
    assert reader.partials[2].aggregates in a.others
    assert gauge(registry, "privwatch_commons_partitions", state="remote") == 1
    assert gauge(registry, "privwatch_commons_oldest_age_seconds") == 10.0
    views = list(a.others)
    commons.tick(1011.0)
    assert a.others == views  # nothing changed: no relink
    commons.tick(1121.0)  # partition 2's partial is now older than commons_max_age_s: its instance died
    assert len(a.others) == 1
    assert gauge(registry, "privwatch_commons_partitions", state="stale") == 1
    assert gauge(registry, "privwatch_commons_partitions", state="remote") == 0
    del commons.partitions.engines[1]  # revoked
    reader.partials = {**reader.partials, 1: remote(1, 1120.0)}
    commons.tick(1122.0)
    assert reader.owned == {0} and a.others == [reader.partials[1].aggregates]


def test_each_owned_partition_is_published_every_interval_and_reads_back() -> None:
    topic = MemoryTopic("commons", partitions=1)
    a, b = Engine(), Engine()
    commons, _, registry = commons_with({0: a, 3: b}, commons_interval_s=5.0)
    commons.publisher = Publisher(Producer(topic), "commons", GROUP, KEY, "1", 4, VERSIONS, commons.metrics)
    for now in (100.0, 102.0, 105.0):
        commons.tick(now)
    assert len(topic.logs[0]) == 4 and gauge(registry, "privwatch_commons_published_total") == 4
    refusals: list[str] = []
    reader, consumer, ends = reader_over(topic, refusals)
    reader.read_once(consumer, ends)
    assert {p: x.published_at for p, x in reader.latest()[1].items()} == {0: 105.0, 3: 105.0}
    assert refusals == []


class GoneTopic:
    """A producer whose sends fail at once (the topic's metadata never comes)."""

    def __init__(self) -> None:
        self.attempts = 0

    def send(self, topic: str, key: bytes | None = None, value: bytes | None = None) -> Future:
        from kafka.errors import KafkaTimeoutError

        self.attempts += 1
        raise KafkaTimeoutError("Failed to update metadata after 0.5 secs.")


def test_a_send_that_fails_at_once_stops_the_round_and_backs_off() -> None:
    commons, _, registry = commons_with({0: Engine(), 1: Engine(), 2: Engine()}, commons_interval_s=5.0)
    gone = GoneTopic()
    commons.publisher = Publisher(gone, "commons", GROUP, KEY, "1", 4, VERSIONS, commons.metrics)
    for now in (100.0, 101.0, 105.0, 110.0, 115.0):  # rounds at 100 (fails), 105 (fails), then 115
        commons.tick(now)
    assert gone.attempts == 3 and gauge(registry, "privwatch_commons_publish_failures_total") == 3
    topic = MemoryTopic("commons", partitions=1)
    commons.publisher.producer = Producer(topic)
    commons.tick(135.0)
    commons.tick(140.0)  # back to every interval once a round went out
    assert len(topic.logs[0]) == 6


# -- what sharing changes ------------------------------------------------------------------------
def test_a_peer_normal_first_touch_pages_alone_but_not_once_the_peers_partition_is_linked() -> None:
    """A new HR partner's first touch of health data: its peers (in another partition) use it daily."""
    base = routine(seed=7, days=12)
    elsewhere = {"hr-001", "hr-002", "hr-003"}
    here = [e for e in base if e.principal_id not in elsewhere]
    there = [e for e in base if e.principal_id in elsewhere]
    joiner = replace(last_of(base, "hr-000"), principal_id="hr-009", event_id="joiner", ts=T0 + 12 * DAY + 10 * HOUR,
                     device_id="lt-hr-009")

    def first_touch_pages(linked: bool) -> list[dict[str, Any]]:
        engines = {0: Engine(EngineConfig()), 1: Engine(EngineConfig())}
        if linked:
            link(engines)
        for e in there:
            engines[1].process(e)
        alerts = [a for e in here for a in engines[0].process(e)]
        alerts += engines[0].process(replace(joiner, resource_id="hr.medical_leave", sensitivity="restricted",
                                             categories=("health", "pii.hr")))
        return pages(alerts, "hr-009", "novelty")

    assert first_touch_pages(linked=False)
    assert first_touch_pages(linked=True) == []


def test_with_commons_interval_s_0_nothing_is_shared() -> None:
    a, b = Engine(), Engine()
    commons, _, _ = commons_with({0: a, 1: b}, commons_interval_s=0.0)
    commons.connect({"1": KEY}, 2)
    commons.tick(100.0)
    assert a.others == [] and b.others == []


# -- start-up ------------------------------------------------------------------------------------
def test_start_up_checks_the_commons_topic_is_there_and_compacted(monkeypatch: pytest.MonkeyPatch) -> None:
    from stream.errors import TopologyError
    from stream.kafka import topics

    policies = {"privwatch.state": "compact", "privwatch.commons": "delete"}
    monkeypatch.setattr(topics, "describe", lambda settings, names: {
        name: {"cleanup.policy": policies.get(name, "delete")} for name in names})
    with pytest.raises(TopologyError, match="commons topic 'privwatch.commons' has cleanup.policy=delete"):
        topics.check_topics(Settings(metrics_port=0))
    assert "privwatch.commons" not in topics.roles(Settings(metrics_port=0, commons_interval_s=0), True)
    policies["privwatch.commons"] = "compact"
    topics.check_topics(Settings(metrics_port=0))
