"""The hot path's shortcuts give exactly what the straightforward code gave: values derived once per
event and shared by the detectors, the seen-set and running-statistics updates, and the engine's
pre-resolved detector loop (same alerts, same learned state as running each detector in turn)."""

from __future__ import annotations

import copy
import gc
import pickle
import random
import zlib
from array import array
from dataclasses import astuple, replace
from typing import Any

import orjson
from detector_streams import DAY, HOUR, T0, access, last_of, routine

from detectors.compact import EW, SeenSet, day_number, h32, h32_once, ip_prefix, is_weekend, local_hour, tagged
from detectors.engine import Engine, EngineConfig
from detectors.events import SENSITIVITY_RANK, Event


def _items_reference(event: Event) -> list[tuple[str, str, int]]:
    """novelty's sensitive items as it computed them per call."""
    items = [("category", c, tagged(1, c)) for c in event.categories]
    if event.resource_id and SENSITIVITY_RANK.get(event.sensitivity, 0) >= 2:
        items.append(("resource", event.resource_id, tagged(2, event.resource_id)))
    return items


def _events() -> list[Event]:
    rng = random.Random(7)
    out = []
    for i in range(300):
        out.append(
            Event(
                kind=rng.choice(["access", "permission"]),
                event_id=f"e{i}",
                ts=T0 + rng.uniform(0, 30 * DAY),
                principal_id=f"u{rng.randrange(5)}",
                tz_offset_s=rng.choice([0, 3600, -36_000, 19_800]),
                resource_id=rng.choice(["", "db.t", "crm.contacts"]),
                sensitivity=rng.choice([None, "public", "internal", "confidential", "restricted"]),
                categories=tuple(rng.sample(["health", "pii.contact", "location"], rng.randrange(3))),
                subject_refs=tuple(f"s{rng.randrange(50)}" for _ in range(rng.randrange(4))),
                ip=rng.choice([None, "", "10.1.2.3", "2001:db8:1:2::7"]),
                country=rng.choice([None, "", "GB", "FR"]),
                device_id=rng.choice([None, "lt-1"]),
                user_agent=rng.choice([None, "Mozilla/5.0"]),
            )
        )
    return out


def test_derived_values_match_their_definitions() -> None:
    for e in _events():
        values = (e.country, ip_prefix(e.ip), e.device_id, e.user_agent)
        assert e.context_values == values
        tags = (1, 2, 3, 4)
        assert e.context_hashes == tuple(None if v is None else tagged(t, v) for t, v in zip(tags, values, strict=True))
        assert e.resource_hash == h32(e.resource_id)
        assert e.day == day_number(e.ts)
        assert e.local_hour == local_hour(e.ts, e.tz_offset_s)
        assert e.weekend == is_weekend(e.ts, e.tz_offset_s)
        assert list(e.sensitive_items) == _items_reference(e)
        assert e.subject_hashes == tuple(h32_once(r) for r in e.subject_refs)


def test_hashes_are_the_reference_formula() -> None:
    # computed without products past 2**62 (native ints when compiled): the stored hashes must not move
    rng = random.Random(5)
    texts = ["", "GB", "é", "10.1.20", "Mozilla/5.0", *("".join(rng.choices("abcé-/.0123", k=rng.randrange(1, 40)))
                                                        for _ in range(3000))]
    for text in texts:
        want = (zlib.crc32(text.encode()) * 0x9E3779B1) & 0xFFFFFFFF
        assert h32(text) == h32_once(text) == want
        for tag in (0, 1, 5, 15, 16, 255):
            assert tagged(tag, text) == want ^ ((tag * 0x5BD1E995) & 0xFFFFFFFF)


def test_derived_values_stay_out_of_the_dataclass() -> None:
    e = _events()[0]
    before = astuple(e)
    _ = e.context_hashes, e.sensitive_items, e.day, e.resource_hash
    assert astuple(e) == before and e == replace(e)
    assert replace(e, ip="192.168.7.1").context_values[1] == "192.168.7"  # a replaced event derives afresh
    for clone in (pickle.loads(pickle.dumps(e)), copy.deepcopy(e)):
        assert clone == e and clone.context_hashes == e.context_hashes


def test_seen_set_add_all_is_add_in_turn() -> None:
    rng = random.Random(3)
    one, many = SeenSet(cap=6), SeenSet(cap=6)
    for day in range(400):
        keys = [rng.choice([None, *range(12)]) for _ in range(rng.randrange(5))]
        for k in keys:
            if k is not None:
                one.add(k, day)
        many.add_all(keys, day)
        assert pickle.dumps(one) == pickle.dumps(many)


class _ListSeenSet:
    """The reference: keys and last-seen days in two lists, the oldest (first such) evicted."""

    def __init__(self, cap: int) -> None:
        self.cap, self.keys, self.days = cap, [], []

    def add(self, key: int, day: int) -> None:
        if key in self.keys:
            self.days[self.keys.index(key)] = day
        elif len(self.keys) < self.cap:
            self.keys.append(key), self.days.append(day)
        else:
            i = min(range(len(self.days)), key=self.days.__getitem__)
            self.keys[i], self.days[i] = key, day


def test_seen_set_matches_the_reference_and_finds_keys_only_at_key_boundaries() -> None:
    rng = random.Random(11)
    new, ref = SeenSet(cap=5), _ListSeenSet(cap=5)
    # 0x04030201 then 0x08070605 lie in memory as bytes 01 .. 08, which hold 0x05040302 and 0x06050403
    # at unaligned offsets: those are members only once added themselves
    tricky = [0x04030201, 0x08070605, 0x06050403, 0x05040302, 0, 2**32 - 1]
    for day in range(20_000, 20_600):
        for _ in range(rng.randrange(4)):
            key = rng.choice(tricky) if rng.random() < 0.5 else rng.randrange(9)
            was_new = key not in ref.keys
            assert new.add(key, day) == was_new
            ref.add(key, day)
            assert list(new) == ref.keys and [new.last_day(k) for k in ref.keys] == ref.days
            assert all((k in new) == (k in ref.keys) for k in tricky)


def test_seen_set_restores_every_earlier_snapshot_layout() -> None:
    keys, days, counts = [7, 2**32 - 9, 0x04030201], [20_001, 20_003, 20_002], [1, 0xFFFF, 3]
    layouts = [
        (4, array("I", keys), array("H", days), array("H", counts)),  # formats 2 and 3
        (4, array("I", keys), array("I", [d << 16 | c for d, c in zip(days, counts, strict=True)])),  # format 4
    ]
    for state in layouts:
        restored = SeenSet()
        restored.__setstate__(state)
        assert (restored.cap, list(restored), [restored.last_day(k) for k in keys]) == (4, keys, days)
        again = pickle.loads(pickle.dumps(restored))
        assert pickle.dumps(again) == pickle.dumps(restored) and list(again) == keys
        assert again.add(5, 20_004) and not again.add(2**32 - 9, 20_004) and again.add(6, 20_005)
        assert list(again) == [6, 2**32 - 9, 0x04030201, 5]  # full at 4: the oldest (7, day 20,001) went


def test_ew_update_is_the_textbook_formula() -> None:
    rng = random.Random(5)
    ew, mean, var = EW(), 0.0, 0.0
    for n in range(1, 501):
        x, alpha = rng.lognormvariate(0, 2), rng.choice([0.01, 0.05, 0.5, 1 / 7])
        ew.update(x, alpha)
        if n == 1:
            mean = x
        else:
            a = max(alpha, 1.0 / n)
            diff = x - mean
            incr = a * diff
            mean += incr
            var = (1.0 - a) * (var + diff * incr)
        assert (ew.mean, ew.var, ew.n) == (mean, var, n)


class _ReferenceEngine(Engine):
    """The engine loop as first written: every detector looked up per event."""

    def process(self, event: Event, detected_at: float | None = None) -> list[dict]:
        if event.ts > self.watermark:
            self.watermark = event.ts
        profile = self._profile(event)
        alerts = []
        for detector in [d for d in self.detectors if event.kind in d.event_kinds]:
            finding = detector.score_one(event, profile)
            flagged = False
            if finding is not None:
                alert, flagged = self._decide(finding, profile, detected_at)
                if alert is not None:
                    alerts.append(alert)
            else:
                self.calibrators[detector.name].observe(0.0)
            detector.learn_one(event, profile, flagged)
        profile.n_events += 1
        profile.last_ts = max(profile.last_ts, event.ts)
        if self.watermark >= self._next_sweep:
            self.sweep()
        return alerts


def test_engine_loop_matches_the_reference_loop() -> None:
    events = routine(days=14)
    agent = last_of(events, "su-000")
    late = max(e.ts for e in events) + HOUR
    events += [access(agent, f"x{i}", late + i * 30, action="export", records=50_000 + i, device_id="new",
                      user_agent="curl/8", country="RO") for i in range(20)]
    fast, slow = Engine(EngineConfig()), _ReferenceEngine(EngineConfig())
    fast_alerts = [a for e in events for a in fast.process(e)]
    slow_alerts = [a for e in events for a in slow.process(e)]
    assert fast_alerts == slow_alerts and fast_alerts
    assert pickle.dumps(fast.detectors) == pickle.dumps(slow.detectors)
    assert {k: c.n_ for k, c in fast.calibrators.items()} == {k: c.n_ for k, c in slow.calibrators.items()}


def test_restored_engine_rebuilds_its_loop() -> None:
    events = routine(days=4)
    engine = Engine(EngineConfig())
    for e in events[:2000]:
        engine.process(e)
    restored = pickle.loads(pickle.dumps(engine))
    assert "_steps" not in engine.__getstate__()
    tail = events[2000:]
    assert [a for e in tail for a in restored.process(e)] == [a for e in tail for a in engine.process(e)]
    # the loop drives the restored detectors, not the ones pickled
    assert all(step is d for (step, _), d in zip(restored._all_steps, restored.detectors, strict=True))


def test_loop_gc_nests_across_services() -> None:
    import gc

    from stream.gctune import loop_gc

    before = gc.get_threshold()
    first, second = loop_gc(20_000), loop_gc(30_000)
    first.__enter__()
    second.__enter__()  # a second service in the same process keeps the first one's settings
    assert gc.get_threshold()[0] == 20_000
    first.__exit__(None, None, None)  # the first leaves while the second still runs
    assert gc.get_threshold()[0] == 20_000
    second.__exit__(None, None, None)
    assert gc.get_threshold() == before


def _holds_a_dict(obj: object) -> bool:
    """Whether ``obj`` keeps its attributes in a separate ``__dict__`` (what reading ``__dict__``, as
    pickle does by default, leaves behind) rather than at fixed offsets (what its constructor gives):
    ``gc.get_referents`` shows which."""
    return any(type(ref) is dict for ref in gc.get_referents(obj))


def test_half_space_trees_pickle_through_their_constructor_and_carry_on_identically() -> None:
    from river.tree.padded import PaddedBranch

    from detectors.multivariate import FEATURES, Multivariate

    def branches(trees: Any) -> list[PaddedBranch]:
        return [n for tree in trees.trees for n in tree.iter_dfs() if isinstance(n, PaddedBranch)]

    rng = random.Random(3)
    rows = [{f: rng.random() for f in FEATURES} for _ in range(700)]
    trees = Multivariate(window_size=50)._new_trees()
    for x in rows[:120]:
        trees.learn_one(x)
    restored = pickle.loads(pickle.dumps(trees))
    # neither the pickled model's nodes nor the restored ones hold a __dict__ of their own
    assert branches(trees) and not any(_holds_a_dict(node) for node in branches(trees))
    assert branches(restored) and not any(_holds_a_dict(node) for node in branches(restored))
    # the window pivot walks ``_tree_nodes``: it must list the restored trees' nodes, or masses go stale
    nodes = [node for tree in restored.trees for node in tree.iter_dfs()]
    pivoted = [node for tree_nodes in restored._tree_nodes for node in tree_nodes]
    assert all(a is b for a, b in zip(pivoted, nodes, strict=True))
    for x in rows[120:]:  # several pivots (window of 50) after the restore
        assert restored.score_one(x) == trees.score_one(x)
        restored.learn_one(x)
        trees.learn_one(x)
    assert pickle.dumps(restored) == pickle.dumps(trees)


def _multivariate_events(n: int, seed: int) -> list[Event]:
    rng = random.Random(seed)
    events, ts = [], T0
    for i in range(n):
        ts += rng.expovariate(1 / 40.0)
        events.append(Event(kind="access", event_id=f"e{i}", ts=ts, principal_id=f"u{rng.randrange(12)}",
                            action=rng.choice(["read", "query", "export"]), records=rng.randrange(1, 5_000),
                            resource_id=f"r{rng.randrange(40)}", outcome="allowed"))
    return events


def _reference(trees: Any) -> list[tuple[Any, ...]]:
    """What half-space trees score with: each node's split and reference mass."""
    return [(getattr(n, "feature", None), getattr(n, "threshold", None), n.r_mass)
            for tree in trees.trees for n in tree.iter_dfs()]


def test_multivariate_scores_with_the_trees_of_every_kept_window() -> None:
    """The trees are built from the last complete window of examples when a score needs them: at every
    score they must hold what River's trees learning each example as it came hold (same splits, same
    reference masses, same scores), across a snapshot, with at most two windows of examples kept."""
    from detectors.base import Profile
    from detectors.multivariate import FEATURES, Multivariate

    detector = Multivariate(window_size=20, learn_every=1, min_windows=3, first_checkpoint=2, min_score=0.0,
                            min_relative=0.0)  # scores often: small model window, every closed window kept
    every, profile, width = detector._new_trees(), Profile(first_ts=T0, last_ts=T0), len(FEATURES)
    rng = random.Random(2)
    probes = [{f: rng.random() for f in FEATURES} for _ in range(5)]
    events = _multivariate_events(6_000, 5)
    scores, built, kept, made = 0, set(), 0, []
    for i, event in enumerate(events):
        if i == len(events) // 2:
            detector = pickle.loads(pickle.dumps(detector))
        finding = detector.score_one(event, profile)
        if finding is not None:
            trees = detector._trees_built
            if not any(trees is other for other in made):
                made.append(trees)
            assert _reference(trees) == _reference(every)
            assert [trees.score_one(p) for p in probes] == [every.score_one(p) for p in probes]
            scores += 1
            built.add(detector._trees_window)
        before = detector.n_learned_
        detector.learn_one(event, profile)
        if detector.n_learned_ > before:  # a window closed and was kept: River learns it as it comes
            every.learn_one(dict(zip(FEATURES, detector.examples_[-width:], strict=True)))
        kept = max(kept, len(detector.examples_))
    assert scores > 100 and len(built) > 3 and kept <= (2 * 20 - 1) * width
    assert len(made) == 2  # trees built once, and again after the snapshot: each new window relearned
    assert "_trees_built" not in detector.__getstate__() and detector.legacy_ is None


def test_multivariate_carries_on_from_a_snapshot_with_live_trees() -> None:
    """A format-6 state (the trees themselves, and a batch of examples they had not learned yet)
    restores: the restored trees score until the kept examples cover a complete window of theirs,
    then trees built from the examples do; both score as trees that learned every example."""
    from detectors.multivariate import FEATURES, Multivariate

    rng = random.Random(11)
    rows = [{f: rng.random() for f in FEATURES} for _ in range(400)]
    probes = rows[-20:]
    for restored_at in (57, 60):  # partway through the trees' window of 20, and at its end
        detector, every = Multivariate(window_size=20), Multivariate(window_size=20)._new_trees()
        state = detector.__getstate__()
        for name in ("examples_", "first_example_", "legacy_"):
            state.pop(name)
        old_trees, waiting = detector._new_trees(), rows[restored_at - 3:restored_at]
        for x in rows[:restored_at - 3]:
            old_trees.learn_one(x)
            every.learn_one(x)
        state.update(model_=old_trees, unlearned_=waiting, n_learned_=restored_at)
        old = Multivariate.__new__(Multivariate)  # what unpickling does, in either build
        old.__setstate__(state)
        for x in waiting:
            every.learn_one(x)
        assert old.legacy_ is old_trees and old.first_example_ == restored_at and not old.examples_
        used_legacy = used_built = 0
        for x in rows[restored_at:300]:
            old._keep(x)
            every.learn_one(x)
            if old.n_learned_ == 70:
                old = pickle.loads(pickle.dumps(old))  # a snapshot taken while the old trees still learn
            trees = old._trees()
            used_legacy += trees is old.legacy_
            used_built += trees is old._trees_built
            assert [trees.score_one(p) for p in probes] == [every.score_one(p) for p in probes]
        assert used_legacy > 0 and used_built > 200 and old.legacy_ is None

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
