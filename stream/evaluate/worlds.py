"""``privwatch evaluate --worlds N``: simulate N random worlds and evaluate every system on each.

Two fixed lists of world seeds: :data:`TUNING_SEEDS`, the only worlds detectors may be tuned on,
and :data:`HELD_OUT_SEEDS`, looked at once tuning is done and reported apart (``docs/evaluation.md``
says the same). Each world is drawn by :func:`stream.simulate.world.draw_world`, simulated in
memory and replayed through privwatch as one engine and as a deployment's partitions would see it
(each key partition's engine, sharing baselines: :mod:`stream.evaluate.shared`; also over several
instances with ``instances``), and through the baselines; the outcomes are pooled by
:mod:`stream.evaluate.pooled`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final, TextIO

import orjson

from stream.simulate.generator import DEFAULT_START, simulate
from stream.simulate.world import draw_world

from . import report
from .baselines import BASELINES
from .pooled import Outcome, outcome, pool
from .runner import PRIVWATCH, Progress, ReplayFn, default_replay, replay_alerts
from .scoring import Label, StreamStats, parse_ts, score

#: worlds to tune on (``--seed-set tuning``, the default), and worlds held out until tuning is done
TUNING_SEEDS: Final = tuple(range(101, 117))
HELD_OUT_SEEDS: Final = tuple(range(901, 917))
SEED_SETS: Final = {"tuning": TUNING_SEEDS, "held-out": HELD_OUT_SEEDS}
#: the partition count of a typical deployment (deploy/: six partitions per input topic)
DEPLOYED_PARTITIONS: Final = 6


def partitioned(partitions: int, instances: int = 1) -> str:
    name = f"{PRIVWATCH}, {partitions} partitions"
    return name if instances <= 1 else f"{name}, {instances} instances"


def world_alerts(lines: list[bytes], events: list[dict[str, Any]], replay: ReplayFn, partitions: int,
                 baselines: bool, out: TextIO | None, instances: int = 1,
                 share_interval_s: float = 5.0) -> dict[str, list[dict[str, Any]]]:
    """Alerts of every system on one world's stream: one engine, the partitions in one instance, and
    over ``instances`` instances when more than one."""
    alerts = {PRIVWATCH: replay_alerts(replay, lines, None, out)[0]}
    if partitions > 1:
        alerts[partitioned(partitions)] = replay_alerts(replay, lines, partitions, out)[0]
        if instances > 1:
            alerts[partitioned(partitions, instances)] = replay_alerts(replay, lines, partitions, out, instances,
                                                                       share_interval_s)[0]
    if baselines:
        for name, fn in BASELINES.items():
            alerts[name] = fn(Progress(name, out).wrap(events))
    return alerts


def evaluate_world(seed: int, replay: ReplayFn, partitions: int = DEPLOYED_PARTITIONS, baselines: bool = True,
                   principals: int | None = None, days: int | None = None, out: TextIO | None = sys.stderr,
                   instances: int = 1, share_interval_s: float = 5.0) -> tuple[dict[str, Outcome], dict[str, Any]]:
    """Simulate the random world of ``seed``; return each system's outcome and a per-world summary."""
    world = draw_world(seed)
    n, d = principals or world.principals, days or world.days
    events, raw_labels = simulate(seed, n, d, world=world)
    lines = [orjson.dumps(e) for e in events]
    labels = [Label.from_dict(x) for x in raw_labels]
    bands = {x["label_id"]: x["intensity"] for x in raw_labels if "intensity" in x}
    stats = StreamStats.from_events(events, parse_ts(f"{DEFAULT_START}T00:00:00Z"))
    seen = len({e["principal"]["id"] if e["type"] == "access" else e["target"]["id"] for e in events})
    alerts = world_alerts(lines, events, replay, partitions, baselines, out, instances, share_interval_s)
    outcomes = {name: outcome(items, labels, stats, seen, bands) for name, items in alerts.items()}
    summary = {"seed": seed, "principals": n, "days": d, "events": len(events),
               "incidents": sum(x.label == "incident" for x in labels),
               "benign_shifts": sum(x.label == "benign" for x in labels),
               "results": {name: _brief(score(items, labels, stats)) for name, items in alerts.items()}}
    return outcomes, summary


def _brief(result: dict[str, Any]) -> dict[str, Any]:
    keep = ("incidents", "detected", "recall", "paging_alerts", "precision", "false_pages_per_1k_principal_days",
            "recall_by_kind", "false_pages_by_benign_kind", "pages_by_detector")
    return {k: result[k] for k in keep}


def evaluate_worlds(seeds: Sequence[int], out_dir: Path, replay: ReplayFn | None = None,
                    partitions: int = DEPLOYED_PARTITIONS, baselines: bool = True, principals: int | None = None,
                    days: int | None = None, title: str = "", out: TextIO | None = sys.stderr, instances: int = 1,
                    share_interval_s: float = 5.0) -> dict[str, Any]:
    """Evaluate every system on the worlds of ``seeds``; write ``evaluation.json`` and ``evaluation.html``
    into ``out_dir`` and return the JSON payload."""
    replay = replay if replay is not None else default_replay()
    if replay is None:
        raise RuntimeError("stream.replay is not available")
    out_dir.mkdir(parents=True, exist_ok=True)
    per_system: dict[str, list[Outcome]] = {}
    worlds = []
    for i, seed in enumerate(seeds, 1):
        if out is not None:
            print(f"evaluate: world {i} of {len(seeds)} (seed {seed})", file=out, flush=True)
        outcomes, summary = evaluate_world(seed, replay, partitions, baselines, principals, days, out, instances,
                                           share_interval_s)
        for name, o in outcomes.items():
            per_system.setdefault(name, []).append(o)
        worlds.append(summary)
    results = {name: pool(items) for name, items in per_system.items()}
    payload = {"title": title or f"{len(seeds)} random worlds", "seeds": list(seeds), "partitions": partitions,
               "instances": instances, "results": results, "worlds": worlds}
    report.write_json(out_dir / "evaluation.json", payload)
    from .worlds_report import html_page

    (out_dir / "evaluation.html").write_text(html_page(payload), encoding="utf-8")
    return payload
