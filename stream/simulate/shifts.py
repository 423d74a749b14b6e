"""Benign shifts: labelled changes in behaviour that a good detector must not page on.

Some only change a principal's plans before the routine is generated (travel, laptop refresh,
quarter-end surge, a new table, new joiners, night on-call); others add events directly (first
access after a ticketed grant, an export that is large but within the principal's own tail).
"""

from __future__ import annotations

import math

from .behaviour import RECORDS, access, permission, ticket, volume
from .catalog import DEPARTMENTS, TRAVEL_COUNTRIES
from .organisation import Context, Principal
from .plan import Plan

BENIGN_KINDS = ("travel", "quarter_end_surge", "new_table_adoption", "new_joiner", "night_oncall",
                "laptop_refresh", "ticketed_grant_first_access", "large_usual_export")
#: opt-in (``simulate --recurring-jobs N``): benign, yet it pages until an analyst says it is fine
OPTIONAL_BENIGN_KINDS = ("recurring_bulk_job",)


def _human(p: Principal) -> bool:
    return p.kind == "human" and p.department != "it_admin"


def _exporter(p: Principal) -> bool:
    return _human(p) and p.action_cw[2] - p.action_cw[1] > 0.04 * p.action_cw[-1] and p.activity > 12


def travel(plan: Plan) -> None:
    p = plan.pick(_human)
    length = plan.rng.randint(3, 6)
    first = plan.day(length, weekday=False)
    country, tz_min = plan.rng.choice(TRAVEL_COUNTRIES)
    ips = [f"198.51.100.{plan.rng.randrange(2, 250)}" for _ in range(2)]
    ua = p.home.sources[0]["user_agent"]
    sources = [{"ip": ip, "country": country, "device_id": d, "user_agent": ua}
               for ip in ips for d in p.devices]
    key = plan.label("benign", "travel", [p], f"business trip to {country} for {length} days, same laptop")
    for day in range(first, min(plan.days, first + length)):
        p.overrides[day] = Context(tz_min, sources)
        p.day_marks.setdefault(day, []).append(key)


def laptop_refresh(plan: Plan) -> None:
    p = plan.pick(_human)
    day = plan.day()
    device = f"lt-{plan.rng.getrandbits(24):06x}"
    sources = [dict(s, device_id=device) for s in p.home.sources if s["device_id"] == p.devices[0]]
    key = plan.label("benign", "laptop_refresh", [p], "new laptop (new device id), same office and network")
    for d in range(day, plan.days):
        p.overrides[d] = Context(p.tz_min, sources)
    p.day_marks.setdefault(day, []).append(key)


def quarter_end_surge(plan: Plan) -> None:
    def members(dept: str) -> list[Principal]:
        return [p for p in plan.org.humans(dept) if not p.silent and p.start_day == 0]

    depts = [d for d in ("finance", "sales", "marketing") if len(members(d)) >= 2]
    dept = plan.rng.choice(depts or [d for d in DEPARTMENTS if members(d)])
    length = plan.rng.randint(2, 3)
    first = plan.day(length)
    factor = plan.rng.uniform(3.0, 5.0)
    key = plan.label("benign", "quarter_end_surge", members(dept),
                     f"{dept} quarter-end close: {factor:.1f}x usual volume for {length} days")
    for p in members(dept):
        for day in range(first, min(plan.days, first + length)):
            p.volume[day] = factor
            p.day_marks.setdefault(day, []).append(key)


def new_table_adoption(plan: Plan) -> None:
    dept = plan.rng.choice(list(DEPARTMENTS))
    table = DEPARTMENTS[dept][3]
    if any(table.id == r.id for p in plan.org.humans(dept) for _, r, _ in p.adopted):
        return
    day = plan.day()
    members = plan.org.humans(dept)
    key = plan.label("benign", "new_table_adoption", members, f"{dept} adopts new table {table.id}")
    for p in members:
        p.adopted.append((day, table, 0.5 * p.resource_cw[-1]))
        p.scale[table.id] = plan.rng.lognormvariate(0.0, 0.6)
        for d in (day, day + 1):
            p.resource_marks[(d, table.id)] = key


def new_joiner(plan: Plan) -> None:
    p = plan.pick(_human)
    day = plan.day(2)
    p.start_day = day
    key = plan.label("benign", "new_joiner", [p], f"new {p.role} in {p.department}, does what peers do")
    p.day_marks.setdefault(day, []).append(key)
    p.day_marks.setdefault(day + 1, []).append(key)
    admin = plan.rng.choice(plan.org.admins())
    t = plan.at(p, day, p.work_start_h - 1.0)
    grants = [permission(admin, p, t + k * 60_000, "grant", f"read:{r.id}", plan.org.resource_doc[r.id],
                         ticket(plan.rng), plan.rng.choice(admin.home.sources))
              for k, r in enumerate(p.resources[:3])]
    plan.emit(key, grants)


def night_oncall(plan: Plan) -> None:
    """A weekly on-call rota in every team that has one; each stint is one label."""
    for dept, (_res, _roles, oncall, _new) in DEPARTMENTS.items():
        members = [p for p in plan.org.humans(dept) if p.oncall and not p.silent]
        if not oncall or not members:
            continue
        offset = plan.rng.randrange(len(members))
        for week in range(math.ceil(plan.days / 7)):
            p = members[(week + offset) % len(members)]
            p.oncall_weeks.add(week)
            plan.used.add(p.id)
            key = plan.label("benign", "night_oncall", [p], f"{dept} on-call week {week}: night work 00-05")
            plan.oncall[(p.id, week)] = key


def ticketed_grant_first_access(plan: Plan) -> None:
    p = plan.pick(lambda q: _human(q) and q.role != "agent")
    own = {r.id for r in p.resources}
    options = [r for r in plan.org.resources.values()
               if r.sensitivity == "restricted" and r.kind == "table" and r.id not in own
               and not set(r.categories) & {"health", "minors"}]
    res = plan.rng.choice(options)
    admin = plan.rng.choice(plan.org.admins())
    day = plan.day()
    t = plan.at(p, day, plan.office_hour(p))
    key = plan.label("benign", "ticketed_grant_first_access", [p, admin],
                     f"ticketed grant of {res.id}, then first (ordinary) reads")
    events = [permission(admin, p, t, "grant", f"read:{res.id}", plan.org.resource_doc[res.id],
                         ticket(plan.rng), plan.rng.choice(admin.home.sources))]
    src = plan.rng.choice(p.context(day).sources)
    for _ in range(plan.rng.randint(2, 6)):
        t += plan.rng.randrange(5 * 60_000, 45 * 60_000)
        n = plan.rng.randint(1, 40)
        nbytes, subjects = volume(plan.rng, res, n)
        events.append(access(p, t, "read", plan.org.resource_doc[res.id], n, nbytes, subjects, src))
    plan.emit(key, events)
    p.adopted.append((day + 1, res, 0.1 * p.resource_cw[-1]))


def large_usual_export(plan: Plan) -> None:
    p = plan.pick(_exporter)
    tables = [r for r in p.resources if r.kind == "table"] or p.resources
    res = plan.rng.choice(tables)
    day = plan.day()
    median, sigma = RECORDS["export"]
    z = plan.rng.uniform(2.0, 2.6)  # 98th-99.5th percentile of this principal's own export sizes
    n = max(1, int(median * p.scale.get(res.id, 1.0) * p.export_scale * math.exp(sigma * z)))
    nbytes, subjects = volume(plan.rng, res, n)
    key = plan.label("benign", "large_usual_export", [p], f"export of {n} records, within own heavy tail")
    src = plan.rng.choice(p.context(day).sources)
    t = plan.at(p, day, plan.office_hour(p))
    plan.emit(key, [access(p, t, "export", plan.org.resource_doc[res.id], n, nbytes, subjects, src)])


def recurring_bulk_job(plan: Plan) -> None:
    """An approved table migration: a bulk export of one table on most working days from early in
    the incident period to the end, far above the principal's usual exports. The approval lives in a
    ticketing system privwatch does not see, so nothing in the events tells it from an incident:
    this is what analyst feedback is for (``privwatch feedback-eval``)."""
    p = plan.pick(_exporter)
    tables = [r for r in p.resources if r.kind == "table"] or p.resources
    res = plan.rng.choice(tables)
    first = plan.baseline_days + plan.rng.randrange(0, 3)
    key = plan.label("benign", "recurring_bulk_job", [p],
                     f"approved migration of {res.id}: a bulk export on most working days, ticketed elsewhere")
    events = []
    for day in range(first, plan.days):
        if plan.weekday(day) < 5 and plan.rng.random() < 0.7:
            n = plan.rng.randint(40_000, 150_000)
            nbytes, subjects = volume(plan.rng, res, n)
            src = plan.rng.choice(p.context(day).sources)
            t = plan.at(p, day, plan.office_hour(p))
            events.append(access(p, t, "export", plan.org.resource_doc[res.id], n, nbytes, subjects, src))
    plan.emit(key, events)


SCHEDULED = (night_oncall, travel, laptop_refresh, quarter_end_surge, new_table_adoption, new_joiner)
DIRECT = (ticketed_grant_first_access, large_usual_export)
