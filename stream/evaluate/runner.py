"""Evaluate a simulated directory: replay it through privwatch and the baselines, score, report."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO, TypeVar

import orjson

from stream.progress import bar

from . import report
from .baselines import BASELINES
from .scoring import Label, LabelIndex, StreamStats, is_true_page, parse_ts, score

ReplayFn = Callable[..., Any]  # (lines) -> result; partitioned: (lines, route=...)
PRIVWATCH = "privwatch"


def default_replay() -> ReplayFn | None:
    """``stream.replay.replay.replay_lines`` when the engine is installed, else None."""
    try:
        from stream.replay.replay import replay_lines
    except ImportError:
        return None
    return replay_lines  # type: ignore[no-any-return]


T = TypeVar("T")


class Progress:
    """A progress bar over the events replayed (on a terminal only, :mod:`stream.progress`)."""

    def __init__(self, what: str, out: TextIO | None) -> None:
        self.what, self.out = what, out

    def wrap(self, items: Sequence[T]) -> Iterator[T]:
        with bar(len(items), f"evaluate: {self.what}", unit="ev", enabled=self.out is not None) as shown:
            for item in items:
                shown.update()
                yield item


def replay_alerts(replay: ReplayFn, lines: list[bytes], partitions: int | None, out: TextIO | None,
                  instances: int = 1,
                  share_interval_s: float = 5.0) -> tuple[list[dict[str, Any]], int]:
    """Alerts and rejected-line count from replaying all lines through one engine, or as deployed: the
    key partitions' engines interleaved in the input's order, sharing their baselines, over
    ``instances`` instances that exchange copies every ``share_interval_s`` seconds of event time
    (:class:`stream.evaluate.shared.Deployment`). ``replay`` takes the lines and, for partitions, the
    deployment's ``route``."""
    if not partitions:
        result = replay(Progress(PRIVWATCH, out).wrap(lines))
        return list(result.alerts), int(getattr(result, "rejected", 0))
    from .shared import Deployment

    deployment = Deployment(partitions, instances, share_interval_s)
    what = f"{PRIVWATCH}, {partitions} partitions" + (f" on {instances} instances" if instances > 1 else "")
    result = replay(Progress(what, out).wrap(lines), route=deployment.route)
    alerts = sorted(result.alerts, key=lambda a: (a["ts"], a.get("alert_id", "")))
    return alerts, int(getattr(result, "rejected", 0))


def _load(directory: Path) -> tuple[list[bytes], list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    lines = [line for line in (directory / "events.jsonl").read_bytes().splitlines() if line.strip()]
    events = [orjson.loads(line) for line in lines]
    labels = [orjson.loads(line) for line in (directory / "labels.jsonl").read_bytes().splitlines() if line]
    meta_path = directory / "meta.json"
    meta = orjson.loads(meta_path.read_bytes()) if meta_path.exists() else {}
    return lines, events, labels, meta


def evaluate_dir(directory: Path, replay: ReplayFn | None = None, baselines: bool = True,
                 partitions: int | None = None, out: TextIO | None = sys.stderr, instances: int = 1,
                 share_interval_s: float = 5.0) -> dict[str, Any]:
    """Score privwatch (through ``replay``, default the real engine; as ``partitions`` partitions over
    ``instances`` instances when given: :func:`replay_alerts`) and the baselines on ``directory``.

    Writes ``evaluation.json`` and ``evaluation.html`` there and returns the JSON payload.
    """
    lines, events, raw_labels, meta = _load(directory)
    labels = [Label.from_dict(d) for d in raw_labels]
    stats = StreamStats.from_events(events, parse_ts(meta["start"]) if "start" in meta else None)
    alerts: dict[str, list[dict[str, Any]]] = {}
    notes: dict[str, Any] = {}
    replay = replay if replay is not None else default_replay()
    if replay is None:
        print("evaluate: stream.replay.replay is not available; privwatch is left out", file=out)
    else:
        alerts[PRIVWATCH], notes["privwatch_rejected_lines"] = replay_alerts(
            replay, lines, partitions, out, instances, share_interval_s)
    if baselines:
        for name, fn in BASELINES.items():
            alerts[name] = fn(Progress(name, out).wrap(events))
    results = {name: score(items, labels, stats) for name, items in alerts.items()}
    stream = {"start": stats.start, "end": stats.end,
              "active_principals_after_warmup": stats.active_principals}
    payload = {"directory": str(directory), "events": len(events), "labels": len(labels), "meta": meta,
               "partitions": partitions,
               "instances": instances if partitions else None, "stream": stream, "results": results, **notes}
    report.write_json(directory / "evaluation.json", payload)
    index = LabelIndex(labels)
    page = report.html_report(results, alerts, labels, stats.start, stats.end,
                              f"privwatch evaluation: {directory.name}", lambda a: is_true_page(a, index))
    (directory / "evaluation.html").write_text(page, encoding="utf-8")
    return payload
