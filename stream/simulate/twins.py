"""Benign twins of random worlds: every incident kind has ordinary look-alikes that must not page.

Random worlds use the default world's shifts (:mod:`shifts`: travel, quarter-end surges, new
tables, new joiners, night on-call, laptop refreshes, ticketed first accesses, large usual exports)
and these, each the twin of an incident kind:

- ``late_work`` (account takeover, dormancy at night): an evening of ordinary work, own laptop;
- ``return_from_leave`` (dormant account): one to three weeks away, then the usual work at usual hours;
- ``device_refresh`` (account takeover): a new laptop, often with a newer browser;
- ``service_redeploy`` (service misuse): a service moves to a new host, IP and agent version;
- ``misconfigured_job`` (denied probing): a job or script denied over and over on one or two resources;
- ``reporting_week`` (slow exfiltration): a week of extra exports across the usual tables;
- ``support_backlog`` (snooping): an agent works through twice the usual number of customers;
- ``ticketed_cross_team_access`` (grant then bulk read, first sensitive access): a ticketed grant of
  another team's table, special categories included, then reads and a large query.
"""

from __future__ import annotations

from .behaviour import SUBJECT_POOL, access, lookups, permission, routine_access, ticket, volume
from .incidents import MINUTE
from .organisation import Context, Principal
from .plan import Plan
from .shifts import BENIGN_RATE, _exporter, _human
from .shifts import DIRECT as DEFAULT_DIRECT
from .shifts import SCHEDULED as DEFAULT_SCHEDULED

#: how many of each per 500 principals x 21 days (before the world's own multiplier)
RANDOM_BENIGN_RATE = {**BENIGN_RATE, "late_work": 4, "return_from_leave": 3, "device_refresh": 3,
                      "service_redeploy": 2, "misconfigured_job": 2, "reporting_week": 3, "support_backlog": 2,
                      "ticketed_cross_team_access": 3}


def late_work(plan: Plan) -> None:
    p = plan.pick(lambda q: _human(q) and q.work_start_h < 12.0)
    day = plan.day()
    key = plan.label("benign", "late_work", [p], "an evening of ordinary work on own tables from own laptop")
    start = p.work_start_h + p.work_len_h + plan.rng.uniform(1.0, 4.0)
    mix, sources = p.resource_mix(day), p.context(day).sources
    n = max(3, int(p.activity * plan.rng.uniform(0.2, 0.5)))
    plan.emit(key, [routine_access(plan.rng, plan.org, p, plan.at(p, day, start + 3.0 * plan.rng.random()),
                                   plan.rng.choice(sources), mix) for _ in range(n)])


def return_from_leave(plan: Plan) -> None:
    p = plan.pick(lambda q: _human(q) and q.day_rate >= 1.0)
    back = plan.day(2)
    length = min(back - 1, plan.rng.randint(7, 21))
    p.silent |= set(range(back - length, back))
    key = plan.label("benign", "return_from_leave", [p], f"back from {length} days of leave, usual work")
    for day in (back, back + 1):
        p.day_marks.setdefault(day, []).append(key)


def device_refresh(plan: Plan) -> None:
    p = plan.pick(_human)
    day = plan.day()
    device = f"lt-{plan.rng.getrandbits(24):06x}"
    agent = p.home.sources[0]["user_agent"]
    if plan.rng.random() < 0.6:  # the new laptop comes with a newer browser
        agent = agent.replace("Chrome/126.0", "Chrome/131.0").replace("rv:127.0", "rv:133.0")
        agent = agent.replace("Version/17.5", "Version/18.1").replace("Firefox/127.0", "Firefox/133.0")
    sources = [dict(s, device_id=device, user_agent=agent) for s in p.home.sources if s["device_id"] == p.devices[0]]
    key = plan.label("benign", "device_refresh", [p], "new laptop, maybe a newer browser, same office and network")
    for d in range(day, plan.days):
        p.overrides[d] = Context(p.tz_min, sources)
    p.day_marks.setdefault(day, []).append(key)


def service_redeploy(plan: Plan) -> None:
    p = plan.pick(lambda q: q.kind == "service")
    day = plan.day()
    old = p.home.sources[0]
    stem, _, version = old["user_agent"].partition("/")
    major, _, minor = version.partition(".")
    rng = plan.rng
    src = dict(old, ip=f"10.200.{rng.randrange(250)}.{rng.randrange(10, 250)}",
               device_id=f"{old['device_id']}-{rng.getrandbits(16):04x}", user_agent=f"{stem}/{major}.{int(minor) + 1}")
    key = plan.label("benign", "service_redeploy", [p], "redeployed: new host, IP and agent version")
    for d in range(day, plan.days):
        p.overrides[d] = Context(0, [src])
    p.day_marks.setdefault(day, []).append(key)


def misconfigured_job(plan: Plan) -> None:
    rng = plan.rng
    p = plan.pick(lambda q: q.kind == "service" or (_human(q) and q.role == "engineer"))
    day = plan.day()
    own = {r.id for r in p.resources}
    targets = rng.sample([r for r in plan.org.resources.values() if r.id not in own and r.kind != "bucket"],
                         rng.randint(1, 2))
    hour = rng.uniform(0.0, 20.0) if p.kind == "service" else plan.office_hour(p)
    t = plan.at(p, day, hour)
    src = p.context(day).sources[0]
    n = rng.randint(20, 200)
    key = plan.label("benign", "misconfigured_job", [p], f"a job denied {n} times on {len(targets)} resource(s)")
    events = []
    for _ in range(n):
        res = rng.choice(targets)
        events.append(access(p, t, "read" if res.kind == "api" else "query", plan.org.resource_doc[res.id],
                             0, 0, 0, src, "denied"))
        t += rng.randrange(30_000, 300_000)
    plan.emit(key, events)


def reporting_week(plan: Plan) -> None:
    rng = plan.rng
    p = plan.pick(lambda q: _exporter(q) and sum(r.kind == "table" for r in q.resources) >= 2)
    tables = [r for r in p.resources if r.kind == "table"]
    length = rng.randint(4, 6)
    first = plan.day(length)
    key = plan.label("benign", "reporting_week", [p], f"{length} busy days: more of everything, exports too")
    events = []
    for day in range(first, min(plan.days, first + length)):
        if plan.weekday(day) >= 5:
            continue
        p.volume[day] = rng.uniform(1.3, 1.8)
        p.day_marks.setdefault(day, []).append(key)
        for _ in range(rng.randint(1, 3)):
            res = rng.choice(tables)
            n = max(1, int(400 * p.scale.get(res.id, 1.0) * p.export_scale * rng.lognormvariate(0.0, 0.5)))
            nbytes, subjects = volume(rng, res, n)
            events.append(access(p, plan.at(p, day, plan.office_hour(p)), "export", plan.org.resource_doc[res.id],
                                 n, nbytes, subjects, rng.choice(p.context(day).sources)))
    plan.emit(key, events)


def support_backlog(plan: Plan) -> None:
    rng = plan.rng
    p = plan.pick(lambda q: q.role == "agent" and q.kind == "human")
    day = plan.day()
    n = rng.randint(40, 90)
    key = plan.label("benign", "support_backlog", [p], f"works through a backlog: {n} more customers than usual")
    subjects = [rng.randrange(SUBJECT_POOL) for _ in range(n)]
    plan.emit(key, [e for e in lookups(rng, plan.org, p, day, p.context(day), p.work_start_h, p.work_len_h, subjects)
                    if e["_t"] >= plan.baseline_days * 86_400_000])


def ticketed_cross_team_access(plan: Plan) -> None:
    rng = plan.rng
    p: Principal = plan.pick(lambda q: _human(q) and q.role != "agent")
    own = {r.id for r in p.resources}
    res = rng.choice([r for r in plan.org.resources.values()
                      if r.sensitivity in ("restricted", "confidential") and r.kind == "table" and r.id not in own])
    admin = rng.choice(plan.org.admins())
    day = plan.day()
    t = plan.at(p, day, plan.office_hour(p))
    key = plan.label("benign", "ticketed_cross_team_access", [p, admin],
                     f"ticketed grant of {res.id} to another team, then reads and a large query")
    doc = plan.org.resource_doc[res.id]
    events = [permission(admin, p, t, "grant", f"read:{res.id}", doc, ticket(rng), rng.choice(admin.home.sources))]
    src = rng.choice(p.context(day).sources)
    for k in range(rng.randint(2, 6)):
        t += rng.randrange(5 * MINUTE, 45 * MINUTE)
        n = rng.randint(1_000, 20_000) if k == 1 else rng.randint(1, 40)
        nbytes, subjects = volume(rng, res, n)
        events.append(access(p, t, "query" if k == 1 else "read", doc, n, nbytes, subjects, src))
    plan.emit(key, events)
    p.adopted.append((day + 1, res, 0.1 * p.resource_cw[-1]))


SCHEDULED = (*DEFAULT_SCHEDULED, return_from_leave, device_refresh, service_redeploy)
DIRECT = (*DEFAULT_DIRECT, late_work, misconfigured_job, reporting_week, support_backlog, ticketed_cross_team_access)
