"""The hot path's shortcuts give exactly what the straightforward code gave: values derived once per
event and shared by the detectors, the seen-set and running-statistics updates, and the engine's
pre-resolved detector loop (same alerts, same learned state as running each detector in turn)."""

from __future__ import annotations

import copy
import pickle
import random
import zlib
from array import array
from dataclasses import astuple, replace

from detector_streams import DAY, HOUR, T0, access, last_of, routine

from detectors.compact import EW, SeenSet, h32, h32_once, ip_prefix, tagged
from detectors.days import day_number, is_weekend, local_hour
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

    from stream.ops.gctune import loop_gc

    before = gc.get_threshold()
    first, second = loop_gc(20_000), loop_gc(30_000)
    first.__enter__()
    second.__enter__()  # a second service in the same process keeps the first one's settings
    assert gc.get_threshold()[0] == 20_000
    first.__exit__(None, None, None)  # the first leaves while the second still runs
    assert gc.get_threshold()[0] == 20_000
    second.__exit__(None, None, None)
    assert gc.get_threshold() == before
