"""The service loop in memory (``stream.bench_loop``'s consumer and producer, an injected clock): what
it does with an event the engine fails on, and with records whose other input topic lags."""

from __future__ import annotations

import orjson

from detectors.engine import Engine
from detectors.events import Event


def test_service_loop_dead_letters_an_event_the_engine_fails_on_and_carries_on() -> None:
    from factories import lines, routine_then_bulk
    from prometheus_client import CollectorRegistry

    from detectors.registry import REGISTRY
    from stream import bench_loop
    from stream.metrics import Metrics
    from stream.service import Service
    from stream.settings import Settings

    records = lines(routine_then_bulk("u-1", days=3) + routine_then_bulk("u-2", days=3))
    boom = orjson.loads(records[7])["event_id"]

    class Failing(Engine):
        def process(self, event: Event, detected_at: float | None = None) -> list[dict]:
            if event.event_id == boom:
                raise ValueError("detector bug")
            return super().process(event, detected_at)

    clock = bench_loop.Clock(4.0e9)
    registry = CollectorRegistry()
    service = Service(Settings(metrics_port=0), Metrics(registry, REGISTRY), clock=clock)
    service.partitions.make_engine = Failing
    consumer, producer = bench_loop.FakeConsumer(records, service.inputs, 2), bench_loop.FakeProducer()
    service.consumer, service.producer = consumer, producer
    while not consumer.done() or len(service.merger):
        service.poll_once()
        clock.now += bench_loop.POLL_STEP_S
    service.handle_items(drain=True)

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


def test_records_released_after_the_merge_wait_are_counted() -> None:
    """A partition's access records wait up to merge_wait_ms for its permission topic, which has
    records still to fetch; those released when the wait runs out are counted (a lagging input delays
    the other by that much), those merged or drained are not."""
    from factories import T0, access, lines, permission
    from prometheus_client import CollectorRegistry

    from detectors.registry import REGISTRY
    from stream import bench_loop
    from stream.metrics import Metrics
    from stream.service import Service
    from stream.settings import Settings

    records = lines([access(f"a{i}", T0 + i, "u-1") for i in range(12)] + [permission("p0", T0 + 20, "u-1")])

    def timed_out(merge_wait_ms: int) -> float:
        clock, registry = bench_loop.Clock(4.0e9), CollectorRegistry()
        service = Service(Settings(metrics_port=0, max_poll_records=3, merge_wait_ms=merge_wait_ms),
                          Metrics(registry, REGISTRY), clock=clock)
        consumer = bench_loop.FakeConsumer(records, service.inputs, 1)
        service.consumer, service.producer = consumer, bench_loop.FakeProducer()
        while not consumer.done() or len(service.merger):
            service.poll_once()
            clock.now += bench_loop.POLL_STEP_S  # 10 ms a poll: the permission record comes 40 ms in
        service.handle_items(drain=True)
        assert service.handled_total == len(records)
        return registry.get_sample_value("privwatch_merge_timeouts_total") or 0.0

    assert timed_out(10_000) == 0  # everything waited, and was merged once the permission record came
    assert timed_out(15) == 6  # the first two polls' records waited their 15 ms, in vain
