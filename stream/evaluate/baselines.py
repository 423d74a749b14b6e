"""Two baselines privwatch has to beat, run on the same stream and scored the same way.

* ``river-hst``: the textbook River recipe, ``MinMaxScaler | HalfSpaceTrees`` over per-event
  numeric features, paging on the top 0.2 % of scores (a running 99.8th percentile).
* ``static-rules``: the rules a team writes first (big exports, denied bursts, night access to
  restricted data, privileged grants without a ticket), one page per rule and principal an hour.
"""

from __future__ import annotations

import math
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

SENSITIVITY_RANK = {None: 0, "public": 0, "internal": 1, "confidential": 2, "restricted": 3}
EXPORT_RECORDS = 10_000  # "nobody needs more than 10k rows in a spreadsheet"
DENIED_BURST = 5
DENIED_WINDOW_S = 600
NIGHT_HOURS_UTC = range(0, 5)
COOLDOWN_S = 3600
HST_WARMUP = 1000


def _who(e: dict[str, Any]) -> tuple[str, list[str]]:
    if e["type"] == "access":
        return e["principal"]["id"], []
    actor = e["actor"]["id"]
    return e["target"]["id"], [actor] if actor != e["target"]["id"] else []


def make_alert(detector: str, e: dict[str, Any], score: float, reason: str) -> dict[str, Any]:
    """An alert-like dict (level high) for a baseline hit on event ``e``."""
    pid, related = _who(e)
    return {"type": "alert", "alert_id": f"{detector}:{pid}:{e['event_id']}", "ts": e["ts"],
            "detector": detector, "principal_id": pid, "related_principal_ids": related,
            "severity": 80.0, "level": "high", "score": round(score, 4), "title": reason,
            "reasons": [reason], "evidence_event_ids": [e["event_id"]]}


def features(e: dict[str, Any], when: datetime) -> dict[str, float]:
    """Per-event numeric features for the textbook anomaly detector."""
    access = e["type"] == "access"
    resource = e.get("resource") or {}
    return {
        "log_records": math.log1p(e.get("records", 0)),
        "log_bytes": math.log1p(e.get("bytes", 0)),
        "log_subjects": math.log1p(e.get("subjects", 0)),
        "hour": when.hour + when.minute / 60,
        "is_weekend": float(when.weekday() >= 5),
        "is_export": float(access and e["action"] in ("export", "download")),
        "is_denied": float(e.get("outcome") == "denied"),
        "sensitivity": float(SENSITIVITY_RANK.get(resource.get("sensitivity"), 0)),
        "is_permission": float(not access),
        "privileged": float(bool(e.get("privileged"))),
        "no_ticket": float(not access and not e.get("ticket")),
        "is_service": float((e.get("principal") or e.get("target") or {}).get("kind") == "service"),
    }


def river_hst(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Score every event, then learn it; page when the score tops the running 99.8th percentile."""
    from river import anomaly, preprocessing, stats

    model = preprocessing.MinMaxScaler() | anomaly.HalfSpaceTrees(n_trees=10, height=8, window_size=250,
                                                                   seed=42)
    quantile = stats.Quantile(0.998)
    alerts = []
    for n, e in enumerate(events, 1):
        x = features(e, datetime.fromisoformat(e["ts"]))
        s = model.score_one(x)
        model.learn_one(x)
        threshold = quantile.get()
        quantile.update(s)
        if n > HST_WARMUP and threshold is not None and s > threshold:
            alerts.append(make_alert("river_hst", e, s, f"anomaly score {s:.3f} above p99.8 {threshold:.3f}"))
    return alerts


class StaticRules:
    """First-draft rules with a one-hour cool-down per (rule, principal)."""

    def __init__(self) -> None:
        self._denied: dict[str, deque[float]] = defaultdict(deque)
        self._last: dict[tuple[str, str], float] = {}

    def _fire(self, rule: str, e: dict[str, Any], t: float, reason: str) -> dict[str, Any] | None:
        key = (rule, _who(e)[0])
        if t - self._last.get(key, -math.inf) < COOLDOWN_S:
            return None
        self._last[key] = t
        return make_alert(f"static_{rule}", e, 1.0, reason)

    def check(self, e: dict[str, Any]) -> list[dict[str, Any]]:
        when = datetime.fromisoformat(e["ts"])
        t = when.timestamp()
        if e["type"] == "permission":
            hit = (e["change"] == "grant" and e.get("privileged") and not e.get("ticket")
                   and self._fire("privileged_grant", e, t, "privileged grant without a ticket"))
            return [hit] if hit else []
        if e["principal"].get("kind") == "service":
            return []  # service accounts were the first thing the team allow-listed
        hits = [self._export(e, t), self._denied_burst(e, t), self._night(e, t, when.hour)]
        return [h for h in hits if h]

    def _export(self, e: dict[str, Any], t: float) -> dict[str, Any] | None:
        if e["action"] in ("export", "download") and e.get("records", 0) > EXPORT_RECORDS:
            return self._fire("big_export", e, t, f"export of {e['records']} records > {EXPORT_RECORDS}")
        return None

    def _denied_burst(self, e: dict[str, Any], t: float) -> dict[str, Any] | None:
        if e["outcome"] != "denied":
            return None
        window = self._denied[e["principal"]["id"]]
        window.append(t)
        while window and window[0] < t - DENIED_WINDOW_S:
            window.popleft()
        if len(window) >= DENIED_BURST:
            return self._fire("denied_burst", e, t, f"{len(window)} denied requests in 10 min")
        return None

    def _night(self, e: dict[str, Any], t: float, hour: int) -> dict[str, Any] | None:
        restricted = (e.get("resource") or {}).get("sensitivity") == "restricted"
        if restricted and e["outcome"] == "allowed" and hour in NIGHT_HOURS_UTC:
            return self._fire("night_restricted", e, t, "restricted data accessed 00:00-05:00 UTC")
        return None


def static_rules(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    rules = StaticRules()
    alerts = []
    for e in events:
        alerts.extend(rules.check(e))
    return alerts


BASELINES: dict[str, Callable[[Iterable[dict[str, Any]]], list[dict[str, Any]]]] = {
    "river-hst baseline": river_hst,
    "static-rules baseline": static_rules,
}
