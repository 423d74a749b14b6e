"""Library entry point: :func:`simulate` draws an organisation, plans shifts and incidents, generates
the routine, then sorts everything into one event-time ordered stream with ids and timestamps.

>>> events, labels = simulate(seed=3, principals=20, days=9, baseline_days=4)
>>> all(a["ts"] <= b["ts"] for a, b in zip(events, events[1:]))
True
>>> sorted({lab["kind"] for lab in labels if lab["label"] == "incident"}) == sorted(INCIDENT_KINDS)
True
"""

from __future__ import annotations

import gc
import logging
import math
import random
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from operator import itemgetter
from typing import Any

from . import graded, shifts, twins
from . import incidents as inc
from .behaviour import DAY, Marks, admin_day, night_shift, service_day, working_day
from .incidents import INCIDENT_KINDS
from .organisation import Principal, build_organisation
from .plan import Plan, build_labels
from .world import World

log = logging.getLogger(__name__)

DEFAULT_START = "2026-10-01"
#: Simulated events per principal per day (measured: 281,037 for 500 principals over 21 days).
EVENTS_PER_PRINCIPAL_DAY = 26


def _plan(seed: int, principals: int, days: int, incidents: int | None, baseline_days: int,
          start: str, recurring_jobs: int = 0, world: World | None = None) -> Plan:
    rng = random.Random(seed)
    org = build_organisation(rng, principals, world)
    plan = Plan(org, rng, days, baseline_days, date.fromisoformat(start).weekday())
    if org.world.graded:
        _plan_graded(plan, incidents, principals)
        return plan
    scale = principals * days / (500 * 21)
    counts = inc.incident_counts(plan, incidents, principals)
    dormant = [inc.plan_dormant(plan) for _ in range(counts["dormant_account"])]
    for fn in shifts.SCHEDULED + shifts.DIRECT:
        rate = shifts.BENIGN_RATE.get(fn.__name__, 0)
        for _ in range(max(1, round(rate * scale)) if rate else 1):
            fn(plan)
    for kind in INCIDENT_KINDS:
        if kind == "dormant_account":
            for p, wake in dormant:
                inc.dormant_account(plan, p, wake)
            continue
        for _ in range(counts[kind]):
            getattr(inc, kind)(plan)
    for _ in range(recurring_jobs):  # last, so that the rest of the plan is the same without them
        shifts.recurring_bulk_job(plan)
    return plan


def _attempt(fn: Callable[..., None], plan: Plan, *args: object) -> None:
    """Run one injector of a random world; one that finds no principal to fit is skipped (a small world
    may have no agent left, no exporter with two tables...)."""
    try:
        fn(plan, *args)
    except LookupError as exc:
        log.debug("skipped injector=%s reason=%s", fn.__name__, exc)


def _plan_graded(plan: Plan, incidents: int | None, principals: int) -> None:
    """A random world's benign twins and incidents, each incident at a strength from the world's range."""
    world = plan.org.world
    scale = principals * plan.days / (500 * 21)
    counts = inc.incident_counts(plan, incidents, principals, world.incident_rate)
    dormant = [graded.plan_dormant(plan) for _ in range(counts["dormant_account"])]
    for fn in twins.SCHEDULED + twins.DIRECT:
        rate = twins.RANDOM_BENIGN_RATE.get(fn.__name__, 0) * world.benign_rate(fn.__name__)
        for _ in range(max(1, round(rate * scale)) if rate else 1):
            _attempt(fn, plan)
    for kind in INCIDENT_KINDS:
        if kind == "dormant_account":
            for p, wake, strength in dormant:
                _attempt(graded.dormant_account, plan, p, wake, strength)
            continue
        for _ in range(counts[kind]):
            _attempt(getattr(graded, kind), plan)


def _mark(p: Principal, day: int, events: list[dict[str, Any]], marks: Marks) -> None:
    for key in p.day_marks.get(day, ()):
        marks[key].extend(events)
    if p.resource_marks:
        for e in events:
            mark = p.resource_marks.get((day, e["resource"]["id"]))
            if mark:
                marks[mark].append(e)


def _routine(seed: int, plan: Plan) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for p in plan.org.principals:
        rng = random.Random(f"{seed}/{p.id}")
        for day in range(plan.days):
            if p.kind == "service":
                events = service_day(rng, plan.org, p, day, plan.weekday(day))
            else:
                events = working_day(rng, plan.org, p, day, plan.weekday(day))
                if day // 7 in p.oncall_weeks:
                    night = night_shift(rng, plan.org, p, day)
                    plan.marks[plan.oncall[(p.id, day // 7)]].extend(night)
                    events += night
            _mark(p, day, events, plan.marks)
            out.extend(events)
    rng = random.Random(f"{seed}/admin")
    for day in range(plan.days):
        out.extend(admin_day(rng, plan.org, day, plan.weekday(day)))
    return out


def _finalise(events: list[dict[str, Any]], seed: int, days: int, start: str) -> list[dict[str, Any]]:
    """Sort by event time, drop what falls outside the period, set ``ts`` and ``event_id``."""
    kept = [e for e in events if 0 <= e["_t"] < days * DAY]
    kept.sort(key=itemgetter("_t"))  # stable: ties keep the deterministic generation order
    first = date.fromisoformat(start)
    dates = [(first + timedelta(days=d)).isoformat() for d in range(days)]
    minutes = [f"T{m // 60:02d}:{m % 60:02d}:" for m in range(24 * 60)]
    tag = f"ev-{(seed * 0x9E3779B1) & 0xFFFFFF:06x}-"
    for i, e in enumerate(kept):
        d, rest = divmod(e.pop("_t"), DAY)
        m, ms = divmod(rest, 60_000)
        e["ts"] = f"{dates[d]}{minutes[m]}{ms // 1000:02d}.{ms % 1000:03d}Z"
        e["event_id"] = f"{tag}{i:08x}"
    return kept


def simulate(seed: int, principals: int, days: int, incidents: int | None = None, baseline_days: int = 8,
             start: str = DEFAULT_START, recurring_jobs: int = 0,
             world: World | None = None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Simulate ``days`` of an organisation of ``principals``; return ``(events, labels)``.

    ``recurring_jobs`` adds that many opt-in ``recurring_bulk_job`` benign shifts (feedback experiments).
    ``world`` is the organisation's shape (default: the default world; :func:`~.world.draw_world` draws
    a random one, whose incidents carry an intensity).

    Events are contract dicts (access and permission) in event-time order; labels describe every
    injected incident and benign shift with the ids of its events. Same arguments, same output.
    """
    if not 0 < baseline_days < days:
        raise ValueError("need 0 < baseline_days < days")
    collecting = gc.isenabled()
    gc.disable()  # hundreds of thousands of small dicts and no cycles: collection passes only cost time
    try:
        plan = _plan(seed, principals, days, incidents, baseline_days, start, recurring_jobs, world)
        events = _finalise(plan.events + _routine(seed, plan), seed, days, start)
        return events, build_labels(plan)
    finally:
        if collecting:
            gc.enable()


def recent_history(n: int, principals: int, seed: int, weeks_before: int = 0) -> list[dict[str, Any]]:
    """The first ``n`` events of a simulated organisation's history, ending ``weeks_before`` weeks
    before yesterday (UTC).

    ``privwatch bench``'s latency phase continues this history by replaying its last week
    ``weeks_before`` times, one week later each time: the history must end early enough that the
    replayed weeks are still in the past (the service refuses events far ahead of the wall clock).
    """
    days = max(3, math.ceil(n / (principals * EVENTS_PER_PRINCIPAL_DAY)) + 1)
    end = datetime.now(UTC).date() - timedelta(days=1 + 7 * weeks_before)
    while True:
        start = (end - timedelta(days=days - 1)).isoformat()
        events, _ = simulate(seed, principals, days, baseline_days=min(8, days - 1), start=start)
        if len(events) >= n:
            return events[:n]
        days *= 2
