"""Matching alerts to labels, and the metrics an on-call team cares about.

An incident is *detected* when a paging alert (level medium, high or critical) names one of its
principals (``principal_id`` or ``related_principal_ids``) with an alert time in
``[start - 5 min, end + 24 h]``. A paging alert is *true* when it matches an incident that way;
alerts matching only benign shifts, or nothing, are false.

>>> labels = [Label("L1", "incident", "bulk_export", frozenset({"u-1"}), 1000.0, 1100.0)]
>>> stats = StreamStats(start=0.0, end=8 * 86400.0, active_principals=10)
>>> alert = {"principal_id": "u-1", "ts": "1970-01-01T00:20:00Z", "level": "high"}
>>> s = score([alert], labels, stats)
>>> s["recall"], s["precision"], s["delay_minutes"]["median"]
(1.0, 1.0, 3.33)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

PAGING_LEVELS = frozenset({"medium", "high", "critical"})
MATCH_BEFORE_S = 5 * 60
MATCH_AFTER_S = 24 * 3600
#: false pages are counted from this long after the stream start (models are still learning before)
WARMUP_S = 7 * 86400


def parse_ts(ts: str) -> float:
    """RFC 3339 (``Z`` or offset) to seconds since the epoch."""
    return datetime.fromisoformat(ts).timestamp()


@dataclass(frozen=True, slots=True)
class Label:
    """An incident or benign shift: who, what kind, and when (seconds since the epoch)."""

    label_id: str
    label: str
    kind: str
    principals: frozenset[str]
    start: float
    end: float

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Label:
        return cls(d["label_id"], d["label"], d["kind"], frozenset(d["principal_ids"]),
                   parse_ts(d["start"]), parse_ts(d["end"]))

    def matches(self, t: float) -> bool:
        return self.start - MATCH_BEFORE_S <= t <= self.end + MATCH_AFTER_S


@dataclass(frozen=True, slots=True)
class StreamStats:
    """Stream period and the principals active after the warm-up week (for principal-days)."""

    start: float
    end: float
    active_principals: int

    @property
    def principal_days(self) -> float:
        return self.active_principals * max(0.0, self.end - self.start - WARMUP_S) / 86400

    @classmethod
    def from_events(cls, events: Iterable[dict[str, Any]], start: float | None = None) -> StreamStats:
        """Scan events once; ``start`` defaults to the first event's time."""
        first = last = None
        seen: list[tuple[float, str]] = []
        for e in events:
            t = parse_ts(e["ts"])
            first = t if first is None else min(first, t)
            last = t if last is None else max(last, t)
            for who in ("principal", "actor", "target"):
                if isinstance(e.get(who), dict):
                    seen.append((t, e[who]["id"]))
        begin = start if start is not None else (first or 0.0)
        cutoff = begin + WARMUP_S
        active = {pid for t, pid in seen if t >= cutoff}
        return cls(begin, last if last is not None else begin, len(active))


class LabelIndex:
    """Labels by principal, for matching alerts quickly."""

    def __init__(self, labels: Iterable[Label]) -> None:
        self._by_principal: dict[str, list[Label]] = defaultdict(list)
        for lab in labels:
            for pid in lab.principals:
                self._by_principal[pid].append(lab)

    def match(self, alert: dict[str, Any], t: float) -> list[Label]:
        names = [alert.get("principal_id"), *(alert.get("related_principal_ids") or ())]
        found = {lab.label_id: lab for pid in names if pid for lab in self._by_principal.get(pid, ())
                 if lab.matches(t)}
        return list(found.values())


def is_true_page(alert: dict[str, Any], index: LabelIndex) -> bool:
    """Does this alert match a labelled incident (whatever its level)?"""
    return any(lab.label == "incident" for lab in index.match(alert, parse_ts(alert["ts"])))


@dataclass(frozen=True, slots=True)
class Page:
    """A paging alert, when it was raised, and the labels it matches."""

    alert: dict[str, Any]
    t: float
    matched: list[Label]

    @property
    def incidents(self) -> list[Label]:
        return [lab for lab in self.matched if lab.label == "incident"]

    def benign_kinds(self) -> set[str]:
        """The benign shifts a false page falls on (``unlabelled`` when none)."""
        return {lab.kind for lab in self.matched} or {"unlabelled"}


def match_pages(alerts: Iterable[dict[str, Any]], index: LabelIndex) -> Iterator[Page]:
    """Each paging alert (level medium or above) with the labels it matches."""
    for alert in alerts:
        if alert.get("level") in PAGING_LEVELS:
            t = parse_ts(alert["ts"])
            yield Page(alert, t, index.match(alert, t))


def _percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 2) if values else None


def _recall_by_kind(incidents: list[Label], first: dict[str, float]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for lab in incidents:
        row = out.setdefault(lab.kind, {"incidents": 0, "detected": 0})
        row["incidents"] += 1
        row["detected"] += lab.label_id in first
    for row in out.values():
        row["recall"] = round(row["detected"] / row["incidents"], 4)
    return dict(sorted(out.items()))


def score(alerts: Iterable[dict[str, Any]], labels: Iterable[Label], stats: StreamStats) -> dict[str, Any]:
    """Recall (overall, per kind), precision over paging alerts, false pages per 1,000 principal-days
    after the warm-up week, detection delay, and false pages per benign-shift kind."""
    labels = list(labels)
    index = LabelIndex(labels)
    incidents = [lab for lab in labels if lab.label == "incident"]
    benign_pages = dict.fromkeys(sorted({lab.kind for lab in labels if lab.label == "benign"}), 0)
    benign_pages["unlabelled"] = 0
    first: dict[str, float] = {}
    by_detector: dict[str, dict[str, int]] = defaultdict(lambda: {"true": 0, "false": 0})
    paging = true = false_after = 0
    for page in match_pages(alerts, index):
        paging += 1
        by_detector[str(page.alert.get("detector", "-"))]["true" if page.incidents else "false"] += 1
        if page.incidents:
            true += 1
            for lab in page.incidents:
                first[lab.label_id] = min(first.get(lab.label_id, page.t), page.t)
            continue
        false_after += page.t >= stats.start + WARMUP_S
        for kind in page.benign_kinds():
            benign_pages[kind] += 1
    delays = [max(0.0, first[lab.label_id] - lab.start) / 60 for lab in incidents if lab.label_id in first]
    pdays = stats.principal_days
    return {
        "incidents": len(incidents),
        "detected": len(first),
        "recall": round(len(first) / len(incidents), 4) if incidents else None,
        "paging_alerts": paging,
        "true_pages": true,
        "false_pages": paging - true,
        "precision": round(true / paging, 4) if paging else None,
        "false_pages_after_warmup": false_after,
        "principal_days": round(pdays, 1),
        "false_pages_per_1k_principal_days": round(1000 * false_after / pdays, 3) if pdays else None,
        "delay_minutes": {"median": _percentile(delays, 50), "p90": _percentile(delays, 90)},
        "recall_by_kind": _recall_by_kind(incidents, first),
        "false_pages_by_benign_kind": benign_pages,
        "pages_by_detector": dict(sorted(by_detector.items())),
        "detected_label_ids": sorted(first),
    }
