"""Shared state of the injectors: which principals are taken, events and labels produced so far."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .behaviour import DAY, H, Marks
from .organisation import Organisation, Principal
from .world import band


@dataclass(slots=True)
class LabelSpec:
    """A label before event ids are known: its events are collected under ``key`` in the marks."""

    key: str
    label: str
    kind: str
    principal_ids: list[str]
    description: str
    #: how subtle an incident is (0 blatant ... 1 subtle; random worlds only)
    strength: float | None = None


@dataclass
class Plan:
    """What the injectors share: the organisation, a seeded rng, and everything produced."""

    org: Organisation
    rng: random.Random
    days: int
    baseline_days: int
    weekday0: int
    events: list[dict[str, Any]] = field(default_factory=list)
    marks: Marks = field(default_factory=dict)
    labels: list[LabelSpec] = field(default_factory=list)
    used: set[str] = field(default_factory=set)
    #: (principal id, week) -> label key of that on-call stint
    oncall: dict[tuple[str, int], str] = field(default_factory=dict)

    def weekday(self, day: int) -> int:
        return (self.weekday0 + day) % 7

    def pick(self, pred: Callable[[Principal], bool]) -> Principal:
        """A principal not yet used by another injection (any matching one when all are taken)."""
        fits = [p for p in self.org.principals if pred(p) and p.start_day == 0 and p.end_day > self.days]
        fresh = [p for p in fits if p.id not in self.used and not p.silent]
        if not fits:
            raise LookupError("no principal fits this injection; simulate more principals")
        chosen = self.rng.choice(fresh or fits)
        self.used.add(chosen.id)
        return chosen

    def day(self, length: int = 1, weekday: bool = True) -> int:
        """A first day in the incident period with room for ``length`` days (a weekday if asked)."""
        last = max(self.baseline_days, self.days - length)
        candidates = list(range(self.baseline_days, last + 1))
        if weekday:
            candidates = [d for d in candidates if self.weekday(d) < 5] or candidates
        return self.rng.choice(candidates)

    def at(self, p: Principal, day: int, local_h: float) -> int:
        """Milliseconds since stream start of ``local_h`` o'clock on ``day`` in ``p``'s time zone."""
        t = day * DAY + int(local_h * H) - p.context(day).tz_min * 60_000
        # injected bursts stay after the baseline period (in UTC too) and inside the stream
        return min(max(t, self.baseline_days * DAY), self.days * DAY - 6 * H)

    def office_hour(self, p: Principal) -> float:
        return p.work_start_h + self.rng.uniform(0.5, max(1.0, p.work_len_h - 3.0))

    def strength(self) -> float:
        """An incident's strength, drawn from the world's intensity range (0 blatant ... 1 subtle)."""
        lo, hi = self.org.world.intensity or (0.0, 0.0)
        return self.rng.uniform(lo, hi)

    def label(self, label: str, kind: str, principals: Iterable[Principal], description: str,
              strength: float | None = None) -> str:
        key = f"{kind}:{len(self.labels)}"
        ids = list(dict.fromkeys(p.id for p in principals))
        self.labels.append(LabelSpec(key, label, kind, ids, description, strength))
        self.marks[key] = []
        return key

    def emit(self, key: str, events: list[dict[str, Any]]) -> None:
        """Add injected ``events`` to the stream and to label ``key``."""
        self.events.extend(events)
        self.marks[key].extend(events)


def build_labels(plan: Plan) -> list[dict[str, Any]]:
    """Label dicts once events carry ids and timestamps; labels left without events are dropped."""
    out: list[dict[str, Any]] = []
    for spec in plan.labels:
        seen: dict[str, str] = {}
        for e in plan.marks.get(spec.key, []):
            if e["event_id"]:
                seen[e["event_id"]] = e["ts"]
        if not seen:
            continue
        ordered = sorted(seen.items(), key=lambda kv: (kv[1], kv[0]))
        out.append({"label_id": f"L{len(out) + 1:04d}", "label": spec.label, "kind": spec.kind,
                    "principal_ids": spec.principal_ids, "start": ordered[0][1], "end": ordered[-1][1],
                    "event_ids": [eid for eid, _ in ordered], "description": spec.description})
        if spec.strength is not None:
            out[-1]["strength"] = round(spec.strength, 3)
            out[-1]["intensity"] = band(spec.strength)
    return out
