"""Baselines shared across partitions (issue 32, item 1): Engine.partial/view, commons.link, EW.pooled,
and ``evaluate --partitions/--instances`` as deployed."""

from __future__ import annotations

import pickle
import statistics
from pathlib import Path

import pytest
from detector_streams import ADMINS, DAY, HOUR, T0, access, last_of, pages, routine

from detectors.commons import link
from detectors.compact import EW
from detectors.engine import Engine, EngineConfig
from detectors.events import Event
from stream.evaluate.runner import evaluate_dir, replay_alerts
from stream.simulate.generator import simulate
from stream.simulate.output import meta, write_outputs

DAYS = 12
NOW = T0 + DAYS * DAY + 10 * HOUR
#: the HR partners whose daily use of health data makes it normal for their peer group
PEERS = ("hr-000", "hr-001", "hr-002")


def _run(engines: dict[int, Engine], events: list[Event]) -> list[dict]:
    """Each event through its partition's engine (HR peers on 1, everyone else on 0), in time order."""
    alerts: list[dict] = []
    for event in sorted(events, key=lambda e: e.ts):
        alerts.extend(engines[1 if event.principal_id in PEERS else 0].process(event))
    return alerts


@pytest.fixture(scope="module")
def first_touch() -> list[Event]:
    """The routine, where hr-003 never touched health data but its three peers do daily, and a finance
    analyst once did (so the partition without the peers knows the table), then hr-003's first touch."""
    base = [e for e in routine(seed=7, days=DAYS) if not (e.principal_id == "hr-003" and "health" in e.categories)]
    medical = {"resource_id": "hr.medical_leave", "sensitivity": "restricted", "categories": ("health", "pii.hr"),
               "action": "read", "records": 3}
    once = access(last_of(base, "fi-000"), "fi-med", T0 + DAY + 11 * HOUR, **medical)
    touch = access(last_of(base, "hr-003"), "hr-med", NOW, **medical)
    return [*base, once, touch]


def _engines() -> dict[int, Engine]:
    return {0: Engine(EngineConfig(**ADMINS)), 1: Engine(EngineConfig(**ADMINS))}


def test_peer_normal_first_touch_is_not_paged_when_the_peers_are_in_another_partition(first_touch) -> None:
    engines = _engines()
    link(engines)
    assert pages(_run(engines, first_touch), "hr-003", "novelty") == []


def test_the_same_first_touch_pages_in_a_partition_that_does_not_see_the_peers(first_touch) -> None:
    alerts = pages(_run(_engines(), first_touch), "hr-003", "novelty")
    assert alerts and "0 of" in alerts[0]["reasons"][0]


def test_ew_pooled_is_the_pooled_mean_and_variance() -> None:
    xs = [float(x * x % 17) for x in range(40)]
    parts = [EW(), EW(), EW()]
    for i, x in enumerate(xs):
        parts[i % 3].update(x, 0.001)  # alpha below 1/n: each part is a plain mean and variance
    pooled = EW.pooled(parts)
    assert pooled.n == 40
    assert pooled.mean == pytest.approx(statistics.fmean(xs))
    assert pooled.var == pytest.approx(statistics.pvariance(xs))
    assert EW.pooled([parts[0]]) is parts[0] and EW.pooled([EW(), EW()]).n == 0


def test_link_adds_and_removes_partitions_and_remote_copies() -> None:
    a, b, c = Engine(), Engine(), Engine()
    novelty = next(d for d in a.detectors if d.name == "novelty")
    link({0: a, 1: b, 2: c})
    assert len(novelty.others_.parts) == 2
    assert novelty.others_.parts[0][0] is next(d for d in b.detectors if d.name == "novelty").groups_
    remote = pickle.loads(pickle.dumps({3: c.partial()}))
    link({0: a, 1: b}, remote | {1: c.partial()})  # a remote key this process owns is its own engine's
    assert len(novelty.others_.parts) == 2 and novelty.others_.parts[1] is remote[3]["novelty"][0]
    link({0: a})
    assert novelty.others_.parts == () and a._calibrators_seen == {}


def test_views_are_never_persisted() -> None:
    from detectors.portable import export_shared

    a, b = Engine(), Engine()
    link({0: a, 1: b})
    restored = pickle.loads(pickle.dumps(a))
    assert all(getattr(d, "others_", None) is None or d.others_.parts == () for d in restored.detectors)
    assert all("others_" not in state for _, state in export_shared(a)["detectors"].values())


@pytest.fixture(scope="module")
def small_world(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("world")
    events, labels = simulate(seed=5, principals=60, days=12, incidents=12, baseline_days=5)
    write_outputs(out, events, labels, meta(5, 60, 12, "2026-10-01", 5, events, labels))
    return out


def test_three_shared_partitions_score_as_one_engine(small_world: Path) -> None:
    """Not always the same alerts: the partitions' exponentially weighted peer and resource baselines
    pool by count (an approximation of one engine's, which forgets in arrival order), drift closes an
    hour when the partition's next event comes (one engine: the organisation's next), novelty's
    warm-up starts at each partition's first event, and multivariate's trees stay per partition. The
    scores must agree within 0.02 (on this world they are equal)."""
    one = evaluate_dir(small_world, baselines=False, out=None)["results"]["privwatch"]
    three = evaluate_dir(small_world, baselines=False, partitions=3, out=None)["results"]["privwatch"]
    assert three["recall"] == pytest.approx(one["recall"], abs=0.02)
    assert three["precision"] == pytest.approx(one["precision"], abs=0.02)


def test_instances_are_deterministic(small_world: Path) -> None:
    from stream.replay.replay import replay_lines

    lines = [line for line in (small_world / "events.jsonl").read_bytes().splitlines() if line.strip()][:20_000]
    first = replay_alerts(replay_lines, lines, 3, None, instances=2, share_interval_s=60.0)
    again = replay_alerts(replay_lines, lines, 3, None, instances=2, share_interval_s=60.0)
    assert first == again and first[0]
