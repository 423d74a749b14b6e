"""Labelled privacy incidents, one injector per kind (names match the label ``kind`` values)."""

from __future__ import annotations

from typing import Any

from .behaviour import RECORDS, access, fit_action, permission, volume
from .catalog import ATTACKER_AGENTS, ATTACKER_COUNTRIES, BROWSER_AGENTS, PRIVILEGED_ROLES, ResourceSpec
from .organisation import Principal
from .plan import Plan

INCIDENT_KINDS = ("bulk_export", "snooping", "first_sensitive_access", "account_takeover",
                  "privilege_escalation", "grant_then_bulk_read", "dormant_account", "denied_probing",
                  "service_misuse", "slow_exfiltration")
MINUTE = 60_000


def _human(p: Principal) -> bool:
    return p.kind == "human" and p.department != "it_admin"


def _exporter(p: Principal) -> bool:
    return _human(p) and p.action_cw[2] - p.action_cw[1] > 0.04 * p.action_cw[-1]


def _sensitive(plan: Plan, p: Principal) -> list[ResourceSpec]:
    own = [r for r in p.resources if r.sensitivity in ("restricted", "confidential") and r.kind == "table"]
    return own or [r for r in plan.org.resources.values()
                   if r.sensitivity == "restricted" and r.kind == "table"]


def _burst(plan: Plan, p: Principal, t: int, resources: list[ResourceSpec], src: dict[str, Any],
           actions: tuple[str, ...], records: tuple[int, int], count: int, gap_min: int) -> list[dict]:
    """``count`` accesses starting at ``t``, ``gap_min`` minutes apart at most."""
    out = []
    for _ in range(count):
        res = plan.rng.choice(resources)
        action = fit_action(plan.rng.choice(actions), res.kind)
        n = plan.rng.randint(*records)
        nbytes, subjects = volume(plan.rng, res, n)
        out.append(access(p, t, action, plan.org.resource_doc[res.id], n, nbytes, subjects, src))
        t += plan.rng.randrange(MINUTE // 4, gap_min * MINUTE)
    return out


def _stranger(plan: Plan, browser: bool) -> dict[str, Any]:
    rng = plan.rng
    if rng.random() < 0.5:
        ip = f"203.0.113.{rng.randrange(2, 250)}"
    else:
        ip = f"100.{rng.randrange(64, 128)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    agent = rng.choice(BROWSER_AGENTS if browser else ATTACKER_AGENTS)
    device = f"dev-{rng.getrandbits(32):08x}"
    return {"ip": ip, "country": rng.choice(ATTACKER_COUNTRIES), "device_id": device, "user_agent": agent}


def bulk_export(plan: Plan) -> None:
    p = plan.pick(_exporter)
    res = _sensitive(plan, p)
    day = plan.day()
    src = plan.rng.choice(p.context(day).sources)
    key = plan.label("incident", "bulk_export", [p], "bulk export of sensitive records far above own history")
    plan.emit(key, _burst(plan, p, plan.at(p, day, plan.office_hour(p)), res, src, ("export",),
                          (30_000, 250_000), plan.rng.randint(1, 3), 20))


def snooping(plan: Plan) -> None:
    p = plan.pick(lambda q: q.role == "agent" and q.kind == "human")
    day = plan.day()
    t = plan.at(p, day, plan.office_hour(p))
    span = plan.rng.randint(2, 4) * 60 * MINUTE
    n = plan.rng.randint(300, 800)
    src = plan.rng.choice(p.context(day).sources)
    res = plan.org.resource_doc["customers.profile"]
    subjects = plan.rng.sample(range(250_000), n)
    key = plan.label("incident", "snooping", [p], f"{n} lookups of distinct customers in hours")
    times = sorted(t + plan.rng.randrange(span) for _ in range(n))
    plan.emit(key, [access(p, ts, "read", res, 1, plan.rng.randint(650, 980), 1, src,
                           refs=[plan.org.subject_ref(s)]) for ts, s in zip(times, subjects, strict=True)])


def first_sensitive_access(plan: Plan) -> None:
    p = plan.pick(lambda q: _human(q) and q.department not in ("hr", "legal"))
    res = plan.org.resources[plan.rng.choice(("hr.medical_leave", "legal.minors_consent"))]
    day = plan.day()
    src = plan.rng.choice(p.context(day).sources)
    cats = ", ".join(res.categories)
    key = plan.label("incident", "first_sensitive_access", [p],
                     f"{p.department} {p.role} reads {res.id} ({cats}), never used by peers")
    plan.emit(key, _burst(plan, p, plan.at(p, day, plan.office_hour(p)), [res], src,
                          ("query", "read", "export"), (20, 2000), plan.rng.randint(3, 12), 10))


def account_takeover(plan: Plan) -> None:
    p = plan.pick(_human)
    day = plan.day(weekday=False)
    src = _stranger(plan, browser=False)
    t = plan.at(p, day, plan.rng.uniform(1.0, 4.0))
    key = plan.label("incident", "account_takeover", [p],
                     f"night login from {src['country']}, new IP, device and agent; reads then exports")
    res = _sensitive(plan, p)
    reads = _burst(plan, p, t, res, src, ("read", "query"), (5, 500), plan.rng.randint(5, 15), 6)
    exports = _burst(plan, p, reads[-1]["_t"] + 5 * MINUTE, res, src, ("export",), (2_000, 50_000),
                     plan.rng.randint(2, 5), 10)
    plan.emit(key, reads + exports)


def privilege_escalation(plan: Plan) -> None:
    rng = plan.rng
    actor = plan.pick(lambda q: _human(q) and q.department in ("engineering", "security", "data_science"))
    colleagues = [q for q in plan.org.humans(actor.department) if q is not actor and not q.silent]
    self_grant = rng.random() < 0.5 or not colleagues
    target = actor if self_grant else plan.pick(lambda q: q in colleagues)
    day = plan.day()
    t = plan.at(actor, day, plan.office_hour(actor))
    role = rng.choice(PRIVILEGED_ROLES)
    how = "self-grant" if self_grant else f"grant by non-admin {actor.role}"
    key = plan.label("incident", "privilege_escalation", [target, actor], f"{how} of privileged {role}")
    grant = permission(actor, target, t, "grant", role, None, None, rng.choice(actor.context(day).sources),
                       privileged=True)
    res = [plan.org.resources[r] for r in ("iam.directory", "hr.employees", "customers.payment_methods")]
    src = rng.choice(target.context(day).sources)
    plan.emit(key, [grant] + _burst(plan, target, t + 10 * MINUTE, res, src, ("query",), (50, 3000),
                                    rng.randint(1, 4), 15))


def grant_then_bulk_read(plan: Plan) -> None:
    p = plan.pick(lambda q: _human(q) and q.role != "agent")
    own = {r.id for r in p.resources}
    res = plan.rng.choice([r for r in plan.org.resources.values()
                           if r.sensitivity == "restricted" and r.kind == "table" and r.id not in own])
    admin = plan.rng.choice(plan.org.admins())
    day = plan.day()
    t = plan.at(p, day, plan.office_hour(p))
    key = plan.label("incident", "grant_then_bulk_read", [p, admin],
                     f"grant of {res.id} without ticket, bulk read within the hour")
    grant = permission(admin, p, t, "grant", f"read:{res.id}", plan.org.resource_doc[res.id], None,
                       plan.rng.choice(admin.home.sources))
    src = plan.rng.choice(p.context(day).sources)
    plan.emit(key, [grant] + _burst(plan, p, t + plan.rng.randint(5, 40) * MINUTE, [res], src,
                                    ("query", "export"), (20_000, 150_000), plan.rng.randint(1, 3), 8))


def plan_dormant(plan: Plan) -> tuple[Principal, int]:
    """Silence a principal after its first days; it wakes up at the end of the stream."""
    p = plan.pick(lambda q: _human(q) and q.role != "agent")
    active_days = 2
    wake = plan.rng.randint(max(plan.baseline_days, active_days + 30 if plan.days > 35 else plan.days - 2),
                            plan.days - 1)
    p.silent = set(range(active_days, plan.days))
    return p, wake


def dormant_account(plan: Plan, p: Principal, wake: int) -> None:
    res = [r for r in plan.org.resources.values() if r.sensitivity == "restricted" and r.kind == "table"]
    src = plan.rng.choice(p.context(wake).sources)
    key = plan.label("incident", "dormant_account", [p],
                     f"account silent for {wake - 2} days wakes up on restricted data")
    plan.emit(key, _burst(plan, p, plan.at(p, wake, plan.rng.uniform(6.0, 22.0)), res, src,
                          ("query", "export", "read"), (200, 20_000), plan.rng.randint(5, 15), 8))


def denied_probing(plan: Plan) -> None:
    p = plan.pick(_human)
    day = plan.day()
    src = plan.rng.choice(p.context(day).sources)
    own = {r.id for r in p.resources}
    targets = plan.rng.sample([r for r in plan.org.resources.values() if r.id not in own], 12)
    t = plan.at(p, day, plan.office_hour(p))
    n = plan.rng.randint(20, 60)
    key = plan.label("incident", "denied_probing", [p], f"{n} denied requests over {len(targets)} resources")
    events = []
    for _ in range(n):
        res = plan.rng.choice(targets)
        action = fit_action(plan.rng.choice(("read", "query", "export")), res.kind)
        events.append(access(p, t, action, plan.org.resource_doc[res.id], 0, 0, 0, src, "denied"))
        t += plan.rng.randrange(5_000, 45_000)
    plan.emit(key, events)


def service_misuse(plan: Plan) -> None:
    p = plan.pick(lambda q: q.kind == "service")
    day = plan.day()
    src = _stranger(plan, browser=True)
    key = plan.label("incident", "service_misuse", [p],
                     f"service credentials used interactively from {src['country']} with a browser")
    res = [r for r in plan.org.resources.values() if r.sensitivity in ("restricted", "confidential")
           and r.kind == "table"]
    t = plan.at(p, day, plan.rng.uniform(9.0, 16.0))
    queries = _burst(plan, p, t, res, src, ("query", "read"), (10, 2000), plan.rng.randint(3, 10), 8)
    exports = _burst(plan, p, queries[-1]["_t"] + 3 * MINUTE, res, src, ("export",), (5_000, 80_000),
                     plan.rng.randint(2, 5), 12)
    plan.emit(key, queries + exports)


def slow_exfiltration(plan: Plan) -> None:
    p = plan.pick(_exporter)
    length = max(2, min(plan.rng.randint(5, 7), plan.days - plan.baseline_days))
    first = plan.day(length, weekday=False)
    tables = [r for r in p.resources if r.kind == "table" and r.subjects] or p.resources
    res = plan.rng.choice(tables)
    median = RECORDS["export"][0] * p.scale.get(res.id, 1.0) * p.export_scale
    key = plan.label("incident", "slow_exfiltration", [p],
                     f"{res.id}: 1 more export a day for {length} days, each 1.5-3x the usual size")
    events = []
    # No single export stands out (each is below the principal's own 95th percentile, 5.2x the
    # median for sigma 1.0); the daily total grows: k + 1 exports on day k.
    for k, day in enumerate(range(first, min(plan.days, first + length))):
        src = plan.rng.choice(p.context(day).sources)
        for _ in range(k + 1):
            n = max(1, int(median * plan.rng.uniform(1.5, 3.0)))
            nbytes, subjects = volume(plan.rng, res, n)
            t = plan.at(p, day, plan.office_hour(p))
            events.append(access(p, t, "export", plan.org.resource_doc[res.id], n, nbytes, subjects, src))
    plan.emit(key, events)


def incident_counts(plan: Plan, total: int | None, principals: int, rate: float = 2.0) -> dict[str, int]:
    """Incidents per kind: about ``rate`` of each per 500 principals x 21 days unless ``total`` is given."""
    if total is None:
        total = max(len(INCIDENT_KINDS), round(rate * len(INCIDENT_KINDS) * principals * plan.days / (500 * 21)))
    order = list(INCIDENT_KINDS)
    plan.rng.shuffle(order)
    counts = dict.fromkeys(INCIDENT_KINDS, 0)
    for i in range(total):
        counts[order[i % len(order)]] += 1
    return counts

