"""The simulated organisation: principals with habits, resources and network context.

A :class:`Principal` carries everything the daily routine needs (activity level, working hours in
local time, action and resource mixes, record-size scales, network context) plus *plans* that the
benign-shift and incident injectors write before the routine is generated: days off, travel,
a new laptop, a new table, a volume surge, a late start or an early stop.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

from .catalog import (
    ACTIONS,
    BROWSER_AGENTS,
    DEPARTMENTS,
    OFFICES,
    ROLE_ACTIONS,
    SERVICES,
    SHARED_RESOURCES,
    ResourceSpec,
)
from .world import RHYTHMS, World

Source = dict[str, Any]


@dataclass(slots=True)
class Context:
    """Where a principal works from on a day: UTC offset (minutes) and the source dicts it uses."""

    tz_min: int
    sources: list[Source]


@dataclass(slots=True)
class Principal:
    """One human or service account, its habits and the plans injected for it."""

    idx: int
    id: str
    kind: str
    department: str
    role: str
    country: str
    tz_min: int
    office_prefix: str
    doc: dict[str, Any]
    home: Context
    activity: float = 20.0
    work_start_h: float = 9.0
    work_len_h: float = 8.0
    weekend_prob: float = 0.05
    action_cw: list[float] = field(default_factory=list)
    actions: tuple[str, ...] = ACTIONS
    resources: list[ResourceSpec] = field(default_factory=list)
    resource_cw: list[float] = field(default_factory=list)
    scale: dict[str, float] = field(default_factory=dict)
    export_scale: float = 1.0
    oncall: bool = False
    devices: list[str] = field(default_factory=list)
    start_day: int = 0
    end_day: int = 10**6
    silent: set[int] = field(default_factory=set)
    overrides: dict[int, Context] = field(default_factory=dict)
    volume: dict[int, float] = field(default_factory=dict)
    #: (from_day, resource, weight): resources adopted mid-stream
    adopted: list[tuple[int, ResourceSpec, float]] = field(default_factory=list)
    #: day -> label keys: every event of that day belongs to those labels
    day_marks: dict[int, list[str]] = field(default_factory=dict)
    #: (day, resource id) -> label key
    resource_marks: dict[tuple[int, str], str] = field(default_factory=dict)
    oncall_weeks: set[int] = field(default_factory=set)
    per_day: int = 0
    #: odds of working on a given working day (occasional users work on some days only)
    day_rate: float = 1.0
    #: a service's rhythm: steady (24x7), batch (a nightly window) or office (weekday office hours)
    rhythm: str = "steady"

    def context(self, day: int) -> Context:
        return self.overrides.get(day, self.home)

    def active(self, day: int) -> bool:
        return self.start_day <= day < self.end_day and day not in self.silent

    def resource_mix(self, day: int) -> tuple[list[ResourceSpec], list[float]]:
        """Resources and cumulative weights on ``day`` (tables adopted mid-stream included)."""
        extra = [(r, w) for d, r, w in self.adopted if d <= day]
        if not extra:
            return self.resources, self.resource_cw
        res = self.resources + [r for r, _ in extra]
        total = self.resource_cw[-1]
        return res, self.resource_cw + list(accumulate((w for _, w in extra), initial=total))[1:]


@dataclass(slots=True)
class Organisation:
    """All principals and resources; ``resource_doc`` gives the shared contract dict per resource."""

    principals: list[Principal]
    resources: dict[str, ResourceSpec]
    resource_doc: dict[str, dict[str, Any]]
    subject_salt: int
    world: World = field(default_factory=World)

    def humans(self, department: str | None = None) -> list[Principal]:
        return [p for p in self.principals
                if p.kind == "human" and (department is None or p.department == department)]

    def services(self) -> list[Principal]:
        return [p for p in self.principals if p.kind == "service"]

    def admins(self) -> list[Principal]:
        return [p for p in self.principals if p.department == "it_admin" and p.role == "admin"]

    def subject_ref(self, index: int) -> str:
        """Pseudonymous, hashed-looking subject id; a bijection of ``index`` (odd multiplier mod 2**40)."""
        return f"s-{(index * 0x9E3779B1 + self.subject_salt) & 0xFFFFFFFFFF:010x}"


def _resource_docs() -> tuple[dict[str, ResourceSpec], dict[str, dict[str, Any]]]:
    specs: dict[str, ResourceSpec] = {}
    for resources, _roles, _oncall, adopted in DEPARTMENTS.values():
        for r in (*resources, adopted):
            specs[r.id] = r
    for r in SHARED_RESOURCES:
        specs[r.id] = r
    docs = {rid: {"id": r.id, "kind": r.kind, "sensitivity": r.sensitivity, "categories": list(r.categories)}
            for rid, r in specs.items()}
    return specs, docs


def _department_draw(rng: random.Random, n_humans: int, world: World) -> list[str]:
    """Departments for ``n_humans``: every department of the world staffed, two admins and two agents
    at least."""
    names = list(world.departments)
    fixed = ["it_admin", "it_admin", "support", "support"]
    fixed += [d for d in names if d not in fixed]
    fixed = fixed[:n_humans]
    rest = rng.choices(names, weights=list(world.departments.values()), k=n_humans - len(fixed))
    return fixed + rest


def _role(rng: random.Random, dept: str, rank: int, world: World) -> str:
    roles = world.role_weights(dept)
    if rank < 2 and dept in ("it_admin", "support"):
        return "admin" if dept == "it_admin" else "agent"
    return rng.choices(list(roles), weights=list(roles.values()))[0]


def _human_sources(rng: random.Random, prefix: str, country: str) -> tuple[list[Source], list[str]]:
    n_dev = 1 if rng.random() < 0.7 else 2
    devices = [f"lt-{rng.getrandbits(24):06x}" for _ in range(n_dev)]
    ua = rng.choice(BROWSER_AGENTS)
    ips = [f"{prefix}.{rng.randrange(2, 250)}" for _ in range(2)]
    sources = [{"ip": ip, "country": country, "device_id": d, "user_agent": ua}
               for ip in ips for d in devices]
    return sources, devices


def _cross_shared(rng: random.Random, dept: str, world: World, specs: dict[str, ResourceSpec]
                  ) -> list[tuple[ResourceSpec, float]]:
    """Other departments' sensitive tables this person uses a little of (random worlds only)."""
    own = {r.id for r in DEPARTMENTS[dept][0]}
    return [(specs[rid], 0.05 * rng.random()) for rid, share in world.cross_share.items()
            if rid not in own and rng.random() < share]


def _mix(rng: random.Random, p: Principal, dept: str, world: World, specs: dict[str, ResourceSpec]) -> None:
    resources = list(DEPARTMENTS[dept][0])
    weights = [rng.expovariate(1.0) if rng.random() > world.share_zero else 0.0 for _ in resources]
    if p.role == "agent":
        weights[0] += 3.0  # support agents live in customers.profile
    if max(weights) == 0.0:
        weights[0] = 1.0
    resources += SHARED_RESOURCES
    weights += [0.15 * rng.random() for _ in SHARED_RESOURCES]
    if world.cross_share:
        for r, w in _cross_shared(rng, dept, world, specs):
            resources.append(r)
            weights.append(w * sum(weights))
    kept = [(r, w) for r, w in zip(resources, weights, strict=True) if w > 0]
    p.resources = [r for r, _ in kept]
    p.resource_cw = list(accumulate(w for _, w in kept))
    p.scale = {r.id: rng.lognormvariate(0.0, 0.6) for r, _ in kept}
    base = ROLE_ACTIONS[p.role]
    habit = (1.0, 1.0, world.export_weight, 1.0, 1.0, 1.0, 1.0)
    p.action_cw = list(accumulate(w * h * rng.uniform(0.6, 1.4) for w, h in zip(base, habit, strict=True)))
    p.export_scale = rng.lognormvariate(0.0, world.export_sigma)


def _hours(rng: random.Random, p: Principal, world: World) -> None:
    """Office hours, or (random worlds) a night or evening shift, and occasional work."""
    p.work_start_h = rng.uniform(7.5, 10.0)
    p.work_len_h = rng.uniform(7.0, 9.5)
    p.weekend_prob = rng.choice(world.weekend_probs)
    if world.night_share or world.evening_share:
        shift = rng.random()
        if shift < world.night_share:
            p.work_start_h = rng.uniform(20.0, 23.0)
        elif shift < world.night_share + world.evening_share:
            p.work_start_h = rng.uniform(13.0, 16.0)
    if world.occasional_share and rng.random() < world.occasional_share:
        p.day_rate = rng.uniform(*world.occasional_rate)


def _human(rng: random.Random, idx: int, number: int, dept: str, rank: int, world: World,
           specs: dict[str, ResourceSpec]) -> Principal:
    pid = f"u-{number:04d}"
    role = _role(rng, dept, rank, world)
    country, tz_min, office = rng.choices(OFFICES, weights=world.offices)[0]
    prefix = f"{office}.{list(DEPARTMENTS).index(dept) * 10 + rng.randrange(10)}"
    sources, devices = _human_sources(rng, prefix, country)
    # the simulated people directory's admin flag (its IT admins), carried on every event
    doc = {"id": pid, "kind": "human", "department": dept, "role": role,
           "admin": role == "admin" or dept == "it_admin"}
    p = Principal(idx, pid, "human", dept, role, country, tz_min, prefix, doc, Context(tz_min, sources))
    p.devices = devices
    # default world: median ~18 events/day, heavy tail
    p.activity = min(world.activity_cap, max(3.0, rng.lognormvariate(world.activity_mu, world.activity_sigma)))
    _hours(rng, p, world)
    p.oncall = DEPARTMENTS[dept][2]
    _mix(rng, p, dept, world, specs)
    return p


def _service(rng: random.Random, idx: int, k: int, specs: dict[str, ResourceSpec], world: World) -> Principal:
    stem, dept, ua, rids, actions, per_day = SERVICES[k % len(SERVICES)]
    pid = f"svc-{stem}-{k // len(SERVICES) + 1:02d}"
    country, tz_min, office = OFFICES[0]
    src = {"ip": f"10.200.{k % 250}.{10 + k // 250}", "country": country,
           "device_id": f"host-{stem}-{k // len(SERVICES) + 1:02d}", "user_agent": ua}
    doc = {"id": pid, "kind": "service", "department": dept, "role": "service", "admin": False}
    p = Principal(idx, pid, "service", dept, "service", country, 0, "10.200", doc, Context(0, [src]))
    p.devices = [src["device_id"]]
    p.resources = [specs[r] for r in rids]
    p.resource_cw = list(accumulate(1.0 for _ in rids))
    p.action_cw = list(accumulate(actions))
    p.scale = {r: rng.lognormvariate(0.0, 0.5) for r in rids}
    p.per_day = max(12, int(per_day * rng.uniform(0.7, 1.3)))
    if world.rhythms != (1.0, 0.0, 0.0):
        p.rhythm = rng.choices(RHYTHMS, weights=world.rhythms)[0]
    return p


def build_organisation(rng: random.Random, n_principals: int, world: World | None = None) -> Organisation:
    """Draw an organisation of ``n_principals`` in ``world`` (default: the default world, where about
    4 % of them are service accounts)."""
    world = world or World()
    if n_principals < 20:
        raise ValueError("the simulator needs at least 20 principals")
    specs, docs = _resource_docs()
    n_services = max(2, round(n_principals * world.service_share))
    depts = _department_draw(rng, n_principals - n_services, world)
    numbers = list(range(1, len(depts) + 1))
    rng.shuffle(numbers)
    seen: dict[str, int] = {}
    principals: list[Principal] = []
    for number, dept in sorted(zip(numbers, depts, strict=True)):
        rank = seen.get(dept, 0)
        seen[dept] = rank + 1
        principals.append(_human(rng, len(principals), number, dept, rank, world, specs))
    for k in range(n_services):
        principals.append(_service(rng, len(principals), k, specs, world))
    return Organisation(principals, specs, docs, rng.getrandbits(40), world)
