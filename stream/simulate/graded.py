"""Incidents of random worlds, each drawn at a strength from blatant (0) to subtle (1).

The same ten kinds as :mod:`incidents` (the default world's), each recording its strength in its
label (``strength``, and the band in ``intensity``). What subtle means, per kind:

- bulk export: 30x the principal's own usual export (1000x when blatant), one export, by a principal
  that exports every working day (it has a usual export size);
- snooping: 160 distinct customers over six hours (700 over two);
- first sensitive access: one or two small reads, and one peer of the principal touched the table
  once, early on (from moderate on);
- account takeover: a browser, in office hours, a few small exports (blatant: a script at night);
- privilege escalation: a non-admin's grant with a ticket number (blatant: a self-grant);
- grant then bulk read: a few thousand records within the hour;
- dormant account: active daily, silent ten days, then reading payroll and payment data at night
  from its own laptop (blatant: a month, from somewhere new);
- denied probing: a handful of resources over a quarter of an hour;
- service misuse: from an office network and a laptop browser, queries only;
- slow exfiltration: one or two extra exports of the usual size on each working day, by a moderate
  exporter (one to three exports a working day).
"""

from __future__ import annotations

import math

from .behaviour import DAY, RECORDS, H, access, permission, volume
from .catalog import PRIVILEGED_ROLES, ResourceSpec
from .incidents import MINUTE, _burst, _exporter, _human, _sensitive, _stranger
from .organisation import Principal
from .plan import Plan

SPECIAL = frozenset({"health", "minors"})



def lin(a: float, b: float, x: float) -> float:
    """``a`` when blatant (``x`` = 0), ``b`` when subtle (``x`` = 1)."""
    return a + (b - a) * x


def geo(a: float, b: float, x: float) -> float:
    """Geometric interpolation: ``geo(1000, 30, 0.5)`` is about 173."""
    return float(a * (b / a) ** x)


def exports_per_day(p: Principal) -> float:
    """Exports ``p`` makes on an ordinary working day (exports and downloads of tables become exports)."""
    if p.kind != "human" or not p.resource_cw:
        return 0.0
    weights = [b - a for a, b in zip([0.0, *p.resource_cw], p.resource_cw, strict=False)]
    tables = sum(w for w, r in zip(weights, p.resources, strict=True) if r.kind == "table") / p.resource_cw[-1]
    exporting = (p.action_cw[3] - p.action_cw[1]) / p.action_cw[-1]
    return p.activity * p.day_rate * tables * exporting


def _regular_exporter(p: Principal) -> bool:
    """Exports at least once on an ordinary working day: it has a usual export size to be judged by."""
    return _exporter(p) and exports_per_day(p) >= 1.0


def _moderate_exporter(p: Principal) -> bool:
    """Exports one to three times on an ordinary working day: extra exports are not lost in its volume."""
    return _exporter(p) and 1.0 <= exports_per_day(p) <= 3.0


def usual_export(p: Principal) -> float:
    """The median size of ``p``'s exports: the default size, scaled by its export habit and by the
    geometric mean of its tables' scales (weighted by how much it uses each)."""
    weights = [b - a for a, b in zip([0.0, *p.resource_cw], p.resource_cw, strict=False)]
    logs = sum(w * math.log(p.scale.get(r.id, 1.0)) for w, r in zip(weights, p.resources, strict=True))
    return RECORDS["export"][0] * p.export_scale * math.exp(logs / max(sum(weights), 1e-9))


def bulk_export(plan: Plan) -> None:
    """A bulk export ``factor`` times the principal's own usual export size, of a sensitive table it
    uses (half the time) or one it never touched; whatever others export of that table."""
    x, rng = plan.strength(), plan.rng
    p = plan.pick(_regular_exporter)
    own = [r for r in p.resources if r.sensitivity in ("restricted", "confidential") and r.kind == "table"]
    other = [r for r in plan.org.resources.values()
             if r.sensitivity == "restricted" and r.kind == "table" and r not in p.resources
             and not set(r.categories) & SPECIAL]
    res = rng.choice(own if own and (rng.random() < 0.5 or not other) else other)
    usual = usual_export(p)
    factor = geo(1000.0, 30.0, x)
    n = int(min(2_000_000, max(2_000, usual * factor)))
    day = plan.day()
    src = rng.choice(p.context(day).sources)
    key = plan.label("incident", "bulk_export", [p], f"export of ~{n:,} records of {res.id}, "
                     f"{n / max(usual, 1.0):.0f}x this principal's usual export", x)
    t = plan.at(p, day, plan.office_hour(p))
    events = []
    for _ in range(1 if x > 0.5 else rng.randint(1, 3)):
        m = int(n * rng.uniform(0.8, 1.2))
        nbytes, subjects = volume(rng, res, m)
        events.append(access(p, t, "export", plan.org.resource_doc[res.id], m, nbytes, subjects, src))
        t += rng.randrange(2 * MINUTE, 20 * MINUTE)
    plan.emit(key, events)


def snooping(plan: Plan) -> None:
    x, rng = plan.strength(), plan.rng
    p = plan.pick(lambda q: q.role == "agent" and q.kind == "human")
    day = plan.day()
    t = plan.at(p, day, plan.office_hour(p))
    span = int(lin(2.0, 6.0, x) * 60) * MINUTE
    n = round(lin(700, 160, x) * rng.uniform(0.9, 1.1))
    src = rng.choice(p.context(day).sources)
    res = plan.org.resource_doc["customers.profile"]
    subjects = rng.sample(range(250_000), n)
    key = plan.label("incident", "snooping", [p], f"{n} lookups of distinct customers in {span // 3_600_000} h", x)
    times = sorted(t + rng.randrange(span) for _ in range(n))
    plan.emit(key, [access(p, ts, "read", res, 1, rng.randint(650, 980), 1, src, refs=[plan.org.subject_ref(s)])
                    for ts, s in zip(times, subjects, strict=True)])


def _peers(plan: Plan, p: Principal) -> list[Principal]:
    return [q for q in plan.org.humans(p.department) if q.role == p.role and q is not p]


def _unshared_special(plan: Plan) -> tuple[Principal, ResourceSpec]:
    """A principal outside HR and legal, and a special-category table hardly any of its peers use."""
    special = [r for r in plan.org.resources.values() if set(r.categories) & SPECIAL and r.kind == "table"]
    for _ in range(20):
        p = plan.pick(lambda q: _human(q) and q.department not in ("hr", "legal"))
        peers = _peers(plan, p)
        options = [r for r in special if r not in p.resources
                   and sum(r in q.resources for q in peers) <= 0.1 * len(peers)]
        if options:
            return p, plan.rng.choice(options)
    raise LookupError("no principal without peers on special-category data")


def first_sensitive_access(plan: Plan) -> None:
    x, rng = plan.strength(), plan.rng
    p, res = _unshared_special(plan)
    day = plan.day()
    doc = plan.org.resource_doc[res.id]
    peers = [q for q in _peers(plan, p) if q.active(1)]
    if x >= 1 / 3 and peers:  # one peer's single touch, on the second day: not a norm for the group
        q = rng.choice(peers)
        t = DAY + int(plan.office_hour(q) * H) - q.context(1).tz_min * 60_000
        plan.events.append(access(q, t, "read", doc, 2, 2 * res.row_bytes, 2, rng.choice(q.home.sources)))
    key = plan.label("incident", "first_sensitive_access", [p],
                     f"{p.department} {p.role} reads {res.id} ({', '.join(res.categories)}), not used by peers", x)
    count = rng.randint(max(1, round(lin(3, 1, x))), round(lin(12, 3, x)))
    records = (max(1, round(geo(20, 1, x))), round(geo(2000, 20, x)))
    actions = ("query", "read", "export") if x < 0.5 else ("read",)
    src = rng.choice(p.context(day).sources)
    plan.emit(key, _burst(plan, p, plan.at(p, day, plan.office_hour(p)), [res], src, actions, records, count, 10))


def account_takeover(plan: Plan) -> None:
    x, rng = plan.strength(), plan.rng
    p = plan.pick(_human)
    day = plan.day(weekday=False)
    src = _stranger(plan, browser=x >= 1 / 3)
    hours = (rng.uniform(1.0, 4.0), rng.uniform(18.0, 22.0), plan.office_hour(p))
    hour = hours[min(2, int(3 * x))]  # at night, in the evening, in office hours
    key = plan.label("incident", "account_takeover", [p], f"login from {src['country']} at {hour:.0f} h local, "
                     f"new IP, device and agent; reads then exports", x)
    res = _sensitive(plan, p)
    reads = _burst(plan, p, plan.at(p, day, hour), res, src, ("read", "query"), (5, 500),
                   rng.randint(round(lin(5, 2, x)), round(lin(15, 6, x))), 6)
    records = (int(geo(2_000, 200, x)), int(geo(50_000, 3_000, x)))
    exports = _burst(plan, p, reads[-1]["_t"] + 5 * MINUTE, res, src, ("export",), records,
                     rng.randint(1, round(lin(5, 2, x))), 10)
    plan.emit(key, reads + exports)


def privilege_escalation(plan: Plan) -> None:
    x, rng = plan.strength(), plan.rng
    actor = plan.pick(lambda q: _human(q) and q.department in ("engineering", "security", "data_science"))
    colleagues = [q for q in plan.org.humans(actor.department) if q is not actor and not q.silent]
    self_grant = x < 1 / 3 or not colleagues
    target = actor if self_grant else plan.pick(lambda q: q in colleagues)
    day = plan.day()
    t = plan.at(actor, day, plan.office_hour(actor))
    role = rng.choice(PRIVILEGED_ROLES)
    tk = f"CHG-{rng.randrange(10_000, 100_000)}" if x >= 2 / 3 else None
    how = "self-grant" if self_grant else f"grant by non-admin {actor.role}" + (" quoting a ticket" if tk else "")
    key = plan.label("incident", "privilege_escalation", [target, actor], f"{how} of privileged {role}", x)
    grant = permission(actor, target, t, "grant", role, None, tk, rng.choice(actor.context(day).sources),
                       privileged=True)
    res = [plan.org.resources[r] for r in ("iam.directory", "hr.employees", "customers.payment_methods")]
    src = rng.choice(target.context(day).sources)
    plan.emit(key, [grant] + _burst(plan, target, t + 10 * MINUTE, res, src, ("query",),
                                    (int(geo(50, 20, x)), int(geo(3000, 300, x))), rng.randint(1, 4), 15))


def grant_then_bulk_read(plan: Plan) -> None:
    x, rng = plan.strength(), plan.rng
    p = plan.pick(lambda q: _human(q) and q.role != "agent")
    own = {r.id for r in p.resources}
    res = rng.choice([r for r in plan.org.resources.values()
                      if r.sensitivity == "restricted" and r.kind == "table" and r.id not in own])
    admin = rng.choice(plan.org.admins())
    day = plan.day()
    t = plan.at(p, day, plan.office_hour(p))
    key = plan.label("incident", "grant_then_bulk_read", [p, admin],
                     f"grant of {res.id} without ticket, bulk read within the hour", x)
    grant = permission(admin, p, t, "grant", f"read:{res.id}", plan.org.resource_doc[res.id], None,
                       rng.choice(admin.home.sources))
    src = rng.choice(p.context(day).sources)
    records = (int(geo(20_000, 1_500, x)), int(geo(150_000, 5_000, x)))
    plan.emit(key, [grant] + _burst(plan, p, t + rng.randint(5, round(lin(40, 50, x))) * MINUTE, [res], src,
                                    ("query", "export"), records, rng.randint(1, round(lin(3, 2, x))), 8))


def plan_dormant(plan: Plan) -> tuple[Principal, int, float]:
    """Silence a principal after its first few days; it wakes up 10 (subtle) to 30 days later."""
    x = plan.strength()
    p = plan.pick(lambda q: _human(q) and q.role != "agent" and q.day_rate >= 1.0)
    active_days = plan.rng.randint(6, 9)  # at least four working days: a rhythm to be silent against
    silence = max(7, round(lin(plan.days - active_days - 2, 10, x)))
    wake = max(plan.baseline_days, min(plan.days - 1, active_days + silence))
    p.silent = set(range(active_days, plan.days))
    return p, wake, x


def dormant_account(plan: Plan, p: Principal, wake: int, x: float) -> None:
    rng = plan.rng
    first_silent = min(p.silent)
    if x < 1 / 3:  # from somewhere new, on any restricted table
        src = _stranger(plan, browser=True)
        res = [r for r in plan.org.resources.values() if r.sensitivity == "restricted" and r.kind == "table"]
        hour, records, actions = rng.uniform(0.0, 23.0), (200, 20_000), ("query", "export", "read")
    else:  # from its own laptop, at night, on payroll and payment data
        src = rng.choice(p.home.sources)
        res = [plan.org.resources[r] for r in ("finance.payroll", "customers.payment_methods")]
        hour = (p.work_start_h + p.work_len_h + rng.uniform(5.0, 9.0)) % 24  # its own night
        records = (int(geo(200, 20, x)), int(geo(20_000, 500, x)))
        actions = ("query", "read", "read") if x >= 2 / 3 else ("query", "export", "read")
    key = plan.label("incident", "dormant_account", [p], f"active daily for {first_silent} days, silent for "
                     f"{wake - first_silent} days, wakes up on restricted data", x)
    count = rng.randint(round(lin(5, 3, x)), round(lin(15, 6, x)))
    plan.emit(key, _burst(plan, p, plan.at(p, wake, hour), res, src, actions, records, count, 8))


def denied_probing(plan: Plan) -> None:
    x, rng = plan.strength(), plan.rng
    p = plan.pick(_human)
    day = plan.day()
    src = rng.choice(p.context(day).sources)
    own = {r.id for r in p.resources}
    targets = rng.sample([r for r in plan.org.resources.values() if r.id not in own], round(lin(12, 6, x)))
    t = plan.at(p, day, plan.office_hour(p))
    n = rng.randint(round(lin(20, 8, x)), round(lin(60, 14, x)))
    key = plan.label("incident", "denied_probing", [p], f"{n} denied requests over {len(targets)} resources", x)
    events = []
    for i in range(n):
        res = targets[i % len(targets)] if i < len(targets) else rng.choice(targets)
        action = "read" if res.kind != "table" else rng.choice(("read", "query", "export"))
        events.append(access(p, t, action, plan.org.resource_doc[res.id], 0, 0, 0, src, "denied"))
        t += rng.randrange(5_000, int(lin(45_000, 120_000, x)))
    plan.emit(key, events)


def service_misuse(plan: Plan) -> None:
    x, rng = plan.strength(), plan.rng
    p = plan.pick(lambda q: q.kind == "service")
    day = plan.day()
    if x < 2 / 3:
        src = _stranger(plan, browser=True)
    else:  # a colleague's laptop on an office network
        who = rng.choice(plan.org.humans())
        src = dict(rng.choice(who.home.sources), ip=f"{who.office_prefix}.{rng.randrange(2, 250)}")
    key = plan.label("incident", "service_misuse", [p],
                     f"service credentials used interactively from {src['country']} with a browser", x)
    res = [r for r in plan.org.resources.values() if r.sensitivity in ("restricted", "confidential")
           and r.kind == "table" and r not in p.resources]
    t = plan.at(p, day, rng.uniform(9.0, 16.0))
    events = _burst(plan, p, t, res, src, ("query", "read"), (10, 2000), rng.randint(3, 10), 8)
    if x < 2 / 3:
        events += _burst(plan, p, events[-1]["_t"] + 3 * MINUTE, res, src, ("export",),
                         (int(geo(5_000, 1_000, x)), int(geo(80_000, 10_000, x))), rng.randint(1, 5 - round(3 * x)), 12)
    plan.emit(key, events)


def slow_exfiltration(plan: Plan) -> None:
    x, rng = plan.strength(), plan.rng
    p = plan.pick(_moderate_exporter)
    length = max(2, min(round(lin(5, 10, x)) + rng.randint(0, 2), plan.days - plan.baseline_days))
    first = plan.day(length, weekday=False)
    tables = [r for r in p.resources if r.kind == "table"]  # a moderate exporter exports tables
    res = rng.choice([r for r in tables if r.subjects] or tables)
    median = RECORDS["export"][0] * p.scale.get(res.id, 1.0) * p.export_scale
    size = lin(2.25, 1.0, x)
    key = plan.label("incident", "slow_exfiltration", [p],
                     f"{res.id}: extra exports every day for {length} days, each {size:.1f}x the usual size", x)
    events = []
    for k, day in enumerate(range(first, min(plan.days, first + length))):
        if x >= 2 / 3 and (plan.weekday(day) >= 5 or not p.active(day)):
            continue  # subtle: working days only, hidden in the day's work
        src = rng.choice(p.context(day).sources)
        for _ in range(k + 1 if x < 1 / 3 else (2 if x < 2 / 3 else rng.randint(1, 2))):
            n = max(1, int(median * size * rng.uniform(0.7, 1.3)))
            nbytes, subjects = volume(rng, res, n)
            t = plan.at(p, day, plan.office_hour(p))
            events.append(access(p, t, "export", plan.org.resource_doc[res.id], n, nbytes, subjects, src))
    plan.emit(key, events)
