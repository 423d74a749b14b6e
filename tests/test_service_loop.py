"""The service loop in memory (:mod:`stream.testing`'s consumer and producer, an injected clock): what
it does with an event the engine fails on, and with records whose other input topic lags."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from detectors.engine import Engine
from detectors.events import Event


def test_service_loop_dead_letters_an_event_the_engine_fails_on_and_carries_on() -> None:
    from factories import lines, routine_then_bulk

    from stream.testing import consume_all, in_memory

    records = lines(routine_then_bulk("u-1", days=3) + routine_then_bulk("u-2", days=3))
    boom = orjson.loads(records[7])["event_id"]

    class Failing(Engine):
        def process(self, event: Event, detected_at: float | None = None) -> list[dict]:
            if event.event_id == boom:
                raise ValueError("detector bug")
            return super().process(event, detected_at)

    service, harness = in_memory(records, partitions=2)
    service.partitions.make_engine = Failing
    consumer, producer, registry = harness.consumer, harness.producer, harness.registry
    consume_all(service, consumer, harness.clock)

    dead = [sent for sent in producer.sent if sent[0] == service.settings.dead_letter_topic]
    assert [dict(headers)["privwatch.reason"] for _, _, _, headers in dead] == [b"internal"]
    assert dead[0][2] == records[7]
    alerts = [orjson.loads(value) for topic, _, value, _ in producer.sent if topic == service.settings.alerts_topic]
    assert {a["principal_id"] for a in alerts if a["detector"] == "volume"} == {"u-1", "u-2"}  # both bulk exports
    assert service.handled_total == len(records)
    # each event went to its own partition's engine (u-1 hashes to partition 1, u-2 to partition 0)
    assert {p: set(engine.profiles) for p, engine in service.partitions.engines.items()} == {0: {"u-2"}, 1: {"u-1"}}
    assert {tp: offset + 1 for tp, offset in service.checkpoint.handled.items()} == {
        tp: len(log) for tp, log in consumer.logs.items() if log}
    processed = registry.get_sample_value("privwatch_events_consumed_total", {"type": "access", "outcome": "processed"})
    assert processed == len(records) - 1


def _merge_run(records: list[bytes], merge_wait_ms: int, unknown_lag: str = "",
               registry: Any = None) -> tuple[float, list[str]]:
    """The loop over ``records`` (3 a poll, 10 ms apart): the merge timeouts counted, and the event ids in
    the order the engine saw them. ``unknown_lag``: a topic whose high watermark the consumer never
    knows (kafka-python's before a partition's first fetch). ``registry``: the metrics' (a new one)."""
    from prometheus_client import CollectorRegistry

    from stream.settings import Settings
    from stream.testing import FakeConsumer, Harness, consume_all, in_memory

    seen: list[str] = []

    class Recording(Engine):
        def process(self, event: Event, detected_at: float | None = None) -> list[dict]:
            seen.append(event.event_id)
            return super().process(event, detected_at)

    class Consumer(FakeConsumer):
        def highwater(self, tp):  # type: ignore[no-untyped-def]
            return None if tp.topic == unknown_lag else super().highwater(tp)

    settings = Settings(metrics_port=0, max_poll_records=3, merge_wait_ms=merge_wait_ms)
    harness = Harness(Consumer(records, [settings.access_topic, settings.permission_topic], 1),
                      registry=registry or CollectorRegistry())
    service, _ = in_memory(records, 1, settings, harness)
    service.partitions.make_engine = Recording
    consume_all(service, harness.consumer, harness.clock)
    assert service.handled_total == len(records)
    return harness.registry.get_sample_value("privwatch_merge_timeouts_total") or 0.0, seen


def test_records_wait_for_the_other_topic_while_it_has_records_to_fetch_and_are_counted_when_released_early(
) -> None:
    """A partition's access records wait for its permission topic's record, which comes 40 ms later.
    While the permission partition is known to have a record to fetch, they wait for it whatever
    merge_wait_ms says, and are merged with it (Kafka Streams' rule, KIP-695). When that is not known,
    they wait merge_wait_ms at most; those released when the wait runs out are counted."""
    from factories import T0, access, lines, permission

    records = lines([access(f"a{i}", T0 + i, "u-1") for i in range(12)] + [permission("p0", T0 + 20, "u-1")])
    ids = [f"a{i}" for i in range(12)] + ["p0"]
    assert _merge_run(records, 15) == (0, ids)  # known to be behind: waited, however long
    assert _merge_run(records, 10_000, unknown_lag="privwatch.permission-events") == (0, ids)
    assert _merge_run(records, 15, unknown_lag="privwatch.permission-events")[0] == 6  # the first two polls', in vain


def test_the_time_a_record_waited_in_the_merge_is_observed() -> None:
    """The access records polled first wait 40 ms for the permission record (polled in the fifth poll,
    10 ms apart); the first of them is the first item handled, so the sampled merge-hold histogram
    sees its 40 ms."""
    from factories import T0, access, lines, permission
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    records = lines([access(f"a{i}", T0 + i, "u-1") for i in range(12)] + [permission("p0", T0 + 20, "u-1")])
    _merge_run(records, 15, registry=registry)
    held = registry.get_sample_value("privwatch_merge_hold_seconds_sum")
    assert registry.get_sample_value("privwatch_merge_hold_seconds_count") >= 1
    assert held == pytest.approx(0.04, abs=0.005)
    assert registry.get_sample_value("privwatch_merge_hold_seconds_bucket", {"le": "0.05"}) == 1
    assert registry.get_sample_value("privwatch_merge_hold_seconds_bucket", {"le": "0.01"}) == 0


def test_a_topic_catching_up_is_merged_in_event_time_order_beyond_the_merge_wait() -> None:
    """Catching up after a restart: a permission record is fetched at once, long before the access records
    that precede it in event time (a backlog the service reads 3 at a time). It is handled after them,
    though they come 40 ms later than merge_wait_ms allows, because the access partition is known to
    have records to fetch. (Released after the wait, it was handled before a8-a11: a grant ahead of
    reads that happened before it.)"""
    from factories import T0, access, lines, permission

    records = lines([permission("p0", T0 + 20, "u-1")] + [access(f"a{i}", T0 + i, "u-1") for i in range(12)])
    assert _merge_run(records, 15) == (0, [f"a{i}" for i in range(12)] + ["p0"])
    timeouts, seen = _merge_run(records, 15, unknown_lag="privwatch.access-events")
    assert timeouts == 1 and seen.index("p0") < seen.index("a11")  # the access lag unknown: the bound applies


def test_a_topic_whose_first_fetch_comes_late_is_waited_for_as_replay_would() -> None:
    """Live equals replay: the permission topic's first fetch comes 30 polls (300 ms) after the access
    topic's, far beyond merge_wait_ms (15 ms). Its position is known from assignment on (the end offset
    read when the partition's state is restored), so the access records wait for it and every event
    reaches the engine in the file's (event-time) order, with the alerts replay gives."""
    from kafka import TopicPartition

    from stream.replay import replay_lines
    from stream.settings import Settings
    from stream.simulate import simulate
    from stream.testing import FakeConsumer, Harness, consume_all, in_memory

    events, _ = simulate(seed=5, principals=30, days=9, baseline_days=4)
    records = [orjson.dumps(e) for e in events]
    settings = Settings(metrics_port=0, max_poll_records=200, merge_wait_ms=15)
    late = settings.permission_topic

    class LateFirstFetch(FakeConsumer):
        polls = 0

        def poll(self, timeout_ms: int = 0, max_records: int = 500) -> dict:
            self.polls += 1
            batch = super().poll(timeout_ms, max_records)
            held = getattr(self, "held", [])
            self.held = held + batch.pop(TopicPartition(late, 0), [])
            if self.polls > 30 and self.held:
                batch[TopicPartition(late, 0)], self.held = self.held, []
            return batch

        def done(self) -> bool:
            return super().done() and not getattr(self, "held", [])

        def highwater(self, tp):  # type: ignore[no-untyped-def]
            return None if tp.topic == late and self.polls <= 30 else super().highwater(tp)

        def position(self, tp, timeout_ms=0):  # type: ignore[no-untyped-def]
            fetched = super().position(tp)
            return fetched - len(getattr(self, "held", [])) if tp.topic == late else fetched

    seen: list[str] = []

    class Recording(Engine):
        def process(self, event: Event, detected_at: float | None = None) -> list[dict]:
            seen.append(event.event_id)
            return super().process(event, detected_at)

    harness = Harness(LateFirstFetch(records, [settings.access_topic, late], 1))
    service, _ = in_memory(records, 1, settings, harness)
    service.partitions.make_engine = Recording
    service.ownership.assign({TopicPartition(settings.access_topic, 0), TopicPartition(late, 0)})
    consume_all(service, harness.consumer, harness.clock)
    live = sorted(orjson.loads(v)["alert_id"] for t, _, v, _ in harness.producer.sent if t == settings.alerts_topic)
    replayed = sorted(a["alert_id"] for a in replay_lines(records).alerts)
    assert seen == [e["event_id"] for e in events]
    assert live == replayed and live
    assert harness.registry.get_sample_value("privwatch_merge_timeouts_total") == 0


class _Writing:
    """A checkpoint being written, as the loop sees it (stream.service.snapshots.Snapshots)."""

    busy = True
    times: dict[int, float] = {}

    def step(self) -> bool:
        return False

    def persist(self, now: float, force: bool = False) -> None:
        pass

    def committed(self, anchors: Any) -> None:
        pass

    def oldest(self) -> None:
        return None


def test_polls_are_capped_while_a_checkpoint_is_being_written() -> None:
    """Each polled event of a principal the checkpoint has not written yet writes its record first, so
    while one is in progress the loop polls at most ``checkpoint_poll_records``."""
    from factories import lines, routine_then_bulk

    from stream.settings import Settings
    from stream.testing import in_memory

    records = lines(routine_then_bulk("u-1", days=3) + routine_then_bulk("u-2", days=3))
    settings = Settings(metrics_port=0, max_poll_records=2000, checkpoint_poll_records=7)
    service, harness = in_memory(records, 1, settings)
    asked: list[int] = []
    poll = harness.consumer.poll

    def spy(timeout_ms: int = 0, max_records: int = 500) -> Any:
        asked.append(max_records)
        return poll(timeout_ms=timeout_ms, max_records=max_records)

    harness.consumer.poll = spy  # type: ignore[method-assign]
    service.poll_once()
    service.snapshots = _Writing()  # type: ignore[assignment]
    service.poll_once()
    service.snapshots = None
    service.poll_once()
    assert asked == [2000, 7, 2000]
