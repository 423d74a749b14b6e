"""Daily routine: the ordinary access and permission events of every principal.

Events are plain dicts in contract shape plus an internal ``_t`` (milliseconds since the stream
start); ``event_id`` and ``ts`` are filled in once the whole stream is sorted. Nested principal,
resource and source dicts are shared between events (they are never mutated), which keeps the
generator fast.
"""

from __future__ import annotations

import math
import random
from bisect import bisect
from collections.abc import Sequence
from typing import Any, TypeVar

from .catalog import ACTIONS, PRIVILEGED_ROLES, ResourceSpec
from .organisation import Context, Organisation, Principal

H = 3_600_000
DAY = 24 * H
#: median records touched per action, and the lognormal sigma around it
RECORDS = {"read": (2.0, 0.9), "query": (60.0, 1.3), "export": (400.0, 1.0), "download": (3.0, 0.8),
           "write": (4.0, 1.0), "delete": (1.0, 0.5), "share": (3.0, 0.8)}
SUBJECT_POOL = 250_000
DENIED_RATE = 0.003
Marks = dict[str, list[dict[str, Any]]]
T = TypeVar("T")


def choose(rng: random.Random, items: Sequence[T], cum_weights: Sequence[float]) -> T:
    """``rng.choices(items, cum_weights=...)[0]`` without its per-call overhead."""
    return items[bisect(cum_weights, rng.random() * cum_weights[-1], 0, len(items) - 1)]


def poisson(rng: random.Random, lam: float) -> int:
    """Poisson draw (Knuth for small means, normal approximation above 30)."""
    if lam > 30:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, prod = math.exp(-lam), 0, rng.random()
    while prod > limit:
        k += 1
        prod *= rng.random()
    return k


def access(p: Principal, t: int, action: str, res: dict[str, Any], records: int, nbytes: int,
           subjects: int, src: dict[str, Any], outcome: str = "allowed",
           refs: list[str] | None = None, purpose: str | None = None) -> dict[str, Any]:
    """One access event dict (``event_id``/``ts`` placeholders, filled in at the end)."""
    e: dict[str, Any] = {"type": "access", "event_id": "", "ts": "", "principal": p.doc, "action": action,
                         "resource": res, "records": records, "bytes": nbytes, "subjects": subjects,
                         "outcome": outcome, "source": src, "_t": t}
    if refs:
        e["subject_refs"] = refs
    if purpose:
        e["purpose"] = purpose
    return e


def permission(actor: Principal, target: Principal, t: int, change: str, perm: str,
               res: dict[str, Any] | None, ticket: str | None, src: dict[str, Any],
               privileged: bool = False, outcome: str = "allowed") -> dict[str, Any]:
    """One permission event dict."""
    e: dict[str, Any] = {"type": "permission", "event_id": "", "ts": "", "actor": actor.doc,
                         "target": target.doc, "change": change, "permission": perm,
                         "privileged": privileged, "outcome": outcome, "ticket": ticket,
                         "source": {k: v for k, v in src.items() if k in ("ip", "country")}, "_t": t}
    if res is not None:
        e["resource"] = res
    return e


def fit_action(action: str, kind: str) -> str:
    """Map an action onto one that makes sense for the resource kind."""
    if kind == "api":
        return action if action in ("read", "query", "write") else "query"
    if kind == "bucket":
        return "download" if action in ("export", "query") else action
    return "export" if action == "download" else action


def records_for(rng: random.Random, p: Principal, action: str, res: ResourceSpec) -> int:
    median, sigma = RECORDS[action]
    scale = p.scale.get(res.id, 1.0) * (p.export_scale if action == "export" else 1.0)
    return max(1, int(median * scale * rng.lognormvariate(0.0, sigma)))


def volume(rng: random.Random, res: ResourceSpec, records: int) -> tuple[int, int]:
    """(bytes, subjects) for ``records`` rows of ``res``."""
    nbytes = int(records * res.row_bytes * rng.uniform(0.8, 1.2))
    if not res.subjects:
        return nbytes, 0
    return nbytes, records if records <= 1000 else int(records * rng.uniform(0.6, 1.0))


def routine_access(rng: random.Random, org: Organisation, p: Principal, t: int, src: dict[str, Any],
                   mix: tuple[list[ResourceSpec], list[float]],
                   today: list[int] | None = None) -> dict[str, Any]:
    """One ordinary access by ``p`` at ``t`` (rarely a denied request outside its own resources).

    Small reads and writes of subject data name their subjects: drawn from ``today`` (the customers
    a support agent is working on today) when given, else from the whole subject population.
    """
    if rng.random() < DENIED_RATE:
        res = org.resources[rng.choice(list(org.resources))]
        return access(p, t, fit_action("read", res.kind), org.resource_doc[res.id], 0, 0, 0, src, "denied")
    res = choose(rng, mix[0], mix[1])
    action = fit_action(choose(rng, p.actions, p.action_cw), res.kind)
    n = records_for(rng, p, action, res)
    nbytes, subjects = volume(rng, res, n)
    refs = None
    if res.subjects and n <= 5 and action in ("read", "write"):
        who = [rng.choice(today) if today else rng.randrange(SUBJECT_POOL) for _ in range(n)]
        refs = [org.subject_ref(s) for s in who]
    return access(p, t, action, org.resource_doc[res.id], n, nbytes, subjects, src, refs=refs)


def lookups(rng: random.Random, org: Organisation, p: Principal, day: int, ctx: Context,
            start_h: float, span_h: float, subjects: list[int]) -> list[dict[str, Any]]:
    """A support agent's single-subject lookups of today's customers (a fifth of them twice)."""
    res = org.resource_doc["customers.profile"]
    out = []
    for s in subjects + rng.sample(subjects, len(subjects) // 5):
        t = day * DAY + int((start_h + rng.random() * span_h) * H) - ctx.tz_min * 60_000
        nbytes = int(812 * rng.uniform(0.8, 1.2))
        out.append(access(p, t, "read", res, 1, nbytes, 1, rng.choice(ctx.sources),
                          refs=[org.subject_ref(s)], purpose=f"ticket-{rng.randrange(10**5, 10**6)}"))
    return out


def working_day(rng: random.Random, org: Organisation, p: Principal, day: int, weekday: int) -> list[dict]:
    """All routine events of human ``p`` on local ``day`` (weekday 0 = Monday)."""
    if not p.active(day):
        return []
    if p.day_rate < 1.0 and rng.random() > p.day_rate and day not in p.day_marks:
        return []  # an occasional user's day without data work
    mult = p.volume.get(day, 1.0)
    if weekday >= 5 and mult == 1.0:
        if rng.random() > p.weekend_prob:
            return []
        mult = 0.3
    elif rng.random() < 0.03 and mult == 1.0 and day not in p.day_marks:
        return []  # a day off
    ctx = p.context(day)
    mix = p.resource_mix(day)
    start_h = p.work_start_h + rng.gauss(0.0, 0.4)
    n = max(1, int(p.activity * mult * rng.lognormvariate(0.0, 0.35)))
    base = day * DAY - ctx.tz_min * 60_000
    # support agents work on 20-60 customers a day; everything they read names one of those
    today = [rng.randrange(SUBJECT_POOL) for _ in range(rng.randint(20, 60))] if p.role == "agent" else None
    out = [routine_access(rng, org, p, base + int((start_h + rng.random() * p.work_len_h) * H),
                          rng.choice(ctx.sources), mix, today) for _ in range(n)]
    if today:
        out += lookups(rng, org, p, day, ctx, start_h, p.work_len_h, today)
    return out


def night_shift(rng: random.Random, org: Organisation, p: Principal, day: int) -> list[dict]:
    """On-call work between 00:00 and 05:00 local time (called only for on-call weeks)."""
    if rng.random() > 0.5 or not p.active(day):
        return []
    ctx = p.context(day)
    res = [r for r in p.resources if r.kind != "bucket"] or p.resources
    out = []
    for _ in range(rng.randint(2, 8)):
        t = day * DAY + int(rng.uniform(0.0, 5.0) * H) - ctx.tz_min * 60_000
        r = rng.choice(res)
        action = fit_action(rng.choice(("read", "query", "query")), r.kind)
        n = records_for(rng, p, action, r)
        nbytes, subjects = volume(rng, r, n)
        out.append(access(p, t, action, org.resource_doc[r.id], n, nbytes, subjects, rng.choice(ctx.sources)))
    return out


#: (first hour UTC, hours) in which a service of each rhythm works; office-hours services rest at weekends
RHYTHM_WINDOW = {"steady": (0, 24), "batch": (1, 4), "office": (7, 11)}


def service_day(rng: random.Random, org: Organisation, p: Principal, day: int, weekday: int = 0) -> list[dict]:
    """A service account: a steady cadence in its rhythm's window (24x7 by default), one host, one
    agent, narrow record sizes."""
    if not p.active(day) or (p.rhythm == "office" and weekday >= 5):
        return []
    n = max(1, int(p.per_day * rng.uniform(0.95, 1.05)))
    first_h, hours = RHYTHM_WINDOW[p.rhythm]
    step = hours * H // n
    src = p.context(day).sources[0]
    out = []
    for k in range(n):
        t = day * DAY + first_h * H + k * step + rng.randrange(step)
        res = choose(rng, p.resources, p.resource_cw)
        action = fit_action(choose(rng, ACTIONS, p.action_cw), res.kind)
        median = {"export": 20_000.0, "query": 2_000.0, "write": 500.0}.get(action, 50.0)
        records = max(1, int(median * p.scale.get(res.id, 1.0) * rng.lognormvariate(0.0, 0.3)))
        nbytes, subjects = volume(rng, res, records)
        out.append(access(p, t, action, org.resource_doc[res.id], records, nbytes, subjects, src))
    return out


def office_time(rng: random.Random, p: Principal, day: int) -> int:
    """A random moment in ``p``'s working hours on ``day`` (ms since stream start)."""
    local_h = p.work_start_h + rng.random() * p.work_len_h
    return day * DAY + int(local_h * H) - p.context(day).tz_min * 60_000


def ticket(rng: random.Random) -> str:
    return f"CHG-{rng.randrange(10_000, 100_000)}"


def admin_day(rng: random.Random, org: Organisation, day: int, weekday: int) -> list[dict]:
    """Routine grants and revokes by it_admin admins on a weekday, mostly with tickets."""
    admins = [a for a in org.admins() if a.active(day)]
    humans = [h for h in org.humans() if h.active(day)]
    if weekday >= 5 or not admins or not humans:
        return []
    out = []
    lam = max(1.0, len(humans) / 50)
    for change in ["grant"] * poisson(rng, lam) + ["revoke"] * poisson(rng, lam / 2):
        actor, target = rng.choice(admins), rng.choice(humans)
        res = rng.choice(target.resources)
        tk = ticket(rng) if rng.random() < 0.92 else None
        out.append(permission(actor, target, office_time(rng, actor, day), change, f"read:{res.id}",
                              org.resource_doc[res.id], tk, rng.choice(actor.home.sources)))
    if rng.random() < 0.15:  # an occasional ticketed privileged grant to an engineer or admin
        actor = rng.choice(admins)
        pool = [h for h in humans if h.role in ("admin", "engineer") and h is not actor] or humans
        out.append(permission(actor, rng.choice(pool), office_time(rng, actor, day), "grant",
                              rng.choice(PRIVILEGED_ROLES), None, ticket(rng),
                              rng.choice(actor.home.sources), privileged=True))
    return out
