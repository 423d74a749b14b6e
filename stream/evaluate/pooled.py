"""Pooling many worlds: what each system did on each world, then the numbers over all of them.

An :class:`Outcome` is one system on one world: for every incident whether (and how soon) it was
found, and for every page whether it was true, its severity and level. :func:`pool` adds outcomes
up: recall with 95% Wilson intervals (overall, per kind, per intensity band), paging precision,
false pages per 1,000 principal-days (over the whole period and after the first week), detection
delay in event time, how well severity separates true pages from false ones (the AUC: the chance
that a random true page outranks a random false one) and the share of pages per level.

>>> from stream.evaluate.scoring import Label, StreamStats
>>> lab = Label("L1", "incident", "bulk_export", frozenset({"u-1"}), 1000.0, 1100.0)
>>> stats = StreamStats(start=0.0, end=8 * 86400.0, active_principals=10)
>>> alerts = [{"principal_id": "u-1", "ts": "1970-01-01T00:20:00Z", "level": "high", "severity": 70.0},
...           {"principal_id": "u-2", "ts": "1970-01-08T00:20:00Z", "level": "medium", "severity": 55.0}]
>>> p = pool([outcome(alerts, [lab], stats, principals=10)])
>>> p["recall"], p["precision"], p["severity_auc"], p["level_shares"]
(1.0, 0.5, 1.0, {'critical': 0.0, 'high': 0.5, 'medium': 0.5})
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats as sps

from .scoring import WARMUP_S, Label, LabelIndex, StreamStats, match_pages

LEVELS = ("critical", "high", "medium")
UNBANDED = "-"
SEVERITY_BIN = 5.0


@dataclass(frozen=True, slots=True)
class Incident:
    kind: str
    band: str
    delay_min: float | None  # None: not found


@dataclass(frozen=True, slots=True)
class PageOutcome:
    detector: str
    severity: float
    level: str
    true: bool
    after_warmup: bool
    benign_kinds: tuple[str, ...] = ()


@dataclass
class Outcome:
    """One system on one world."""

    incidents: list[Incident] = field(default_factory=list)
    pages: list[PageOutcome] = field(default_factory=list)
    principal_days: float = 0.0
    principal_days_after: float = 0.0


def outcome(alerts: Iterable[dict[str, Any]], labels: list[Label], stats: StreamStats, principals: int,
            bands: dict[str, str] | None = None) -> Outcome:
    """Match ``alerts`` to ``labels`` (as :func:`~stream.evaluate.scoring.score` does); ``principals`` seen
    over the whole period give its principal-days, ``bands`` maps label ids to intensity bands."""
    out = Outcome(principal_days=principals * max(0.0, stats.end - stats.start) / 86400,
                  principal_days_after=stats.principal_days)
    first: dict[str, float] = {}
    for page in match_pages(alerts, LabelIndex(labels)):
        hits = page.incidents
        for lab in hits:
            first[lab.label_id] = min(first.get(lab.label_id, page.t), page.t)
        out.pages.append(PageOutcome(str(page.alert.get("detector", "-")), float(page.alert.get("severity", 0.0)),
                                     page.alert["level"], bool(hits), page.t >= stats.start + WARMUP_S,
                                     () if hits else tuple(sorted(page.benign_kinds()))))
    for lab in labels:
        if lab.label == "incident":
            found = first.get(lab.label_id)
            out.incidents.append(Incident(lab.kind, (bands or {}).get(lab.label_id, UNBANDED),
                                          None if found is None else max(0.0, found - lab.start) / 60))
    return out


def wilson(k: int, n: int) -> list[float] | None:
    """95% Wilson score interval of a proportion ``k / n`` (None when ``n`` is 0).

    >>> wilson(9, 10)
    [0.596, 0.982]
    """
    if n == 0:
        return None
    ci = sps.binomtest(k, n).proportion_ci(0.95, method="wilson")
    return [round(float(ci.low), 3), round(float(ci.high), 3)]


def severity_auc(true: list[float], false: list[float]) -> float | None:
    """Probability that a random true page has a higher severity than a random false one (ties half)."""
    if not true or not false:
        return None
    u = sps.mannwhitneyu(true, false, alternative="two-sided").statistic
    return round(float(u) / (len(true) * len(false)), 3)


def _recall(items: list[Incident]) -> dict[str, Any]:
    found = [i.delay_min for i in items if i.delay_min is not None]
    return {"incidents": len(items), "detected": len(found),
            "recall": round(len(found) / len(items), 4) if items else None, "ci": wilson(len(found), len(items)),
            "delay_median_min": round(float(np.median(found)), 2) if found else None}


def _grouped(items: list[Incident], key: str) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[Incident]] = defaultdict(list)
    for item in items:
        groups[getattr(item, key)].append(item)
    return {name: _recall(group) for name, group in sorted(groups.items())}


def _histogram(pages: list[PageOutcome]) -> list[int]:
    """Pages per severity bin of :data:`SEVERITY_BIN` points, from 50 (the lowest paging severity) to 100."""
    counts = [0] * round(50 / SEVERITY_BIN)
    for p in pages:
        counts[min(len(counts) - 1, max(0, int((p.severity - 50.0) // SEVERITY_BIN)))] += 1
    return counts


def _per_1k(count: int, days: float) -> float | None:
    return round(1000 * count / days, 3) if days else None


def pool(outcomes: list[Outcome]) -> dict[str, Any]:
    """The pooled numbers of one system over many worlds."""
    incidents = [i for o in outcomes for i in o.incidents]
    pages = [p for o in outcomes for p in o.pages]
    true = [p for p in pages if p.true]
    false = [p for p in pages if not p.true]
    delays = [i.delay_min for i in incidents if i.delay_min is not None]
    levels = Counter(p.level for p in pages)
    by_detector: dict[str, dict[str, int]] = defaultdict(lambda: {"true": 0, "false": 0})
    for p in pages:
        by_detector[p.detector]["true" if p.true else "false"] += 1
    benign = Counter(kind for p in false for kind in p.benign_kinds)
    overall = _recall(incidents)
    return {
        "incidents": overall["incidents"],
        "detected": overall["detected"],
        "recall": overall["recall"],
        "recall_ci": overall["ci"],
        "recall_by_kind": _grouped(incidents, "kind"),
        "recall_by_band": _grouped(incidents, "band"),
        "paging_alerts": len(pages),
        "true_pages": len(true),
        "false_pages": len(false),
        "precision": round(len(true) / len(pages), 4) if pages else None,
        "precision_ci": wilson(len(true), len(pages)),
        "principal_days": round(sum(o.principal_days for o in outcomes), 1),
        "false_pages_per_1k_principal_days": _per_1k(len(false), sum(o.principal_days for o in outcomes)),
        "false_pages_per_1k_principal_days_after_week_one": _per_1k(
            sum(p.after_warmup for p in false), sum(o.principal_days_after for o in outcomes)),
        "delay_minutes": {"median": round(float(np.median(delays)), 2) if delays else None,
                          "p90": round(float(np.percentile(delays, 90)), 2) if delays else None},
        "severity_auc": severity_auc([p.severity for p in true], [p.severity for p in false]),
        "level_shares": {lv: round(levels[lv] / len(pages), 3) if pages else 0.0 for lv in LEVELS},
        "severity_histogram": {"true": _histogram(true), "false": _histogram(false)},
        "pages_by_detector": dict(sorted(by_detector.items())),
        "false_pages_by_benign_kind": dict(sorted(benign.items())),
    }
