"""What an organisation is drawn from: the default world, or a random one drawn from wide ranges.

A :class:`World` holds every shape parameter of the simulated organisation that used to be a
constant: which departments exist and how big they are, roles, how much each principal does (a
heavy-tailed lognormal), how widely sensitive tables are shared across departments, night and
evening shift workers, occasional users, services and their rhythms, export habits, how often each
benign shift happens and how intense incidents are. ``World()`` is the default world, whose
organisation is exactly what the simulator always drew; :func:`draw_world` draws a random one.

>>> a, b = draw_world(3), draw_world(3)
>>> a == b, a == draw_world(4), World().graded, a.graded
(True, False, False, True)
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from typing import Any

from .catalog import DEPARTMENT_WEIGHTS, DEPARTMENTS, OFFICE_WEIGHTS, OFFICES

#: sensitive tables another department may use a little of (how widely each one is shared varies);
#: special-category data (health, minors) is reached through a ticketed grant only
SHAREABLE = ("customers.profile", "customers.payment_methods", "finance.invoices", "finance.payroll",
             "hr.employees", "crm.accounts", "app.users", "warehouse.orders", "legal.contracts",
             "marketing.audiences", "support.tickets")
#: service rhythms: steady 24x7, a nightly batch window, office hours on weekdays
RHYTHMS = ("steady", "batch", "office")
#: intensity bands of incidents, by strength (0 blatant ... 1 subtle)
BANDS = (("blatant", 1 / 3), ("moderate", 2 / 3), ("subtle", 1.01))


def band(strength: float) -> str:
    """The intensity band of an incident of ``strength`` (0 blatant, 1 subtle).

    >>> band(0.1), band(0.5), band(0.9)
    ('blatant', 'moderate', 'subtle')
    """
    return next(name for name, top in BANDS if strength < top)


@dataclass(frozen=True)
class World:
    """Shape parameters of a simulated organisation; the defaults are the default world."""

    name: str = "default"
    #: department -> weight; departments not listed are not staffed
    departments: dict[str, float] = field(default_factory=lambda: dict(DEPARTMENT_WEIGHTS))
    #: department -> role -> weight (None: the catalogue's)
    roles: dict[str, dict[str, float]] | None = None
    #: office weights, in the order of catalog.OFFICES
    offices: tuple[float, ...] = OFFICE_WEIGHTS
    #: lognormal events per active day: median exp(mu), spread sigma, capped
    activity_mu: float = 2.9
    activity_sigma: float = 0.7
    activity_cap: float = 250.0
    weekend_probs: tuple[float, ...] = (0.02, 0.05, 0.1, 0.2)
    #: chance that one of its department's resources is not in a member's mix
    share_zero: float = 0.2
    #: sensitive table -> share of other departments' people who use a little of it
    cross_share: dict[str, float] = field(default_factory=dict)
    #: export action weight multiplier (export habits), and the spread of personal export sizes
    export_weight: float = 1.0
    export_sigma: float = 0.8
    #: shares of humans working night shifts (start 20-23 h) and evening shifts (start 13-16 h)
    night_share: float = 0.0
    evening_share: float = 0.0
    #: share of humans who work on only some days, and the range of their daily odds
    occasional_share: float = 0.0
    occasional_rate: tuple[float, float] = (0.15, 0.5)
    #: share of principals that are service accounts, and the weights of their rhythms
    service_share: float = 0.04
    rhythms: tuple[float, float, float] = (1.0, 0.0, 0.0)
    #: benign shift kind -> multiplier of its rate
    benign_rates: dict[str, float] = field(default_factory=dict)
    #: incidents per kind per 500 principals x 21 days
    incident_rate: float = 2.0
    #: incident strengths are drawn from this range (0 blatant ... 1 subtle); None: the default injectors
    intensity: tuple[float, float] | None = None
    #: organisation size and period a random world suggests (the command line may override them)
    principals: int = 500
    days: int = 21

    @property
    def graded(self) -> bool:
        """Whether incidents carry an intensity (random worlds) or are the default world's."""
        return self.intensity is not None

    def role_weights(self, dept: str) -> dict[str, float]:
        if self.roles is None or dept not in self.roles:
            return dict(DEPARTMENTS[dept][1])
        return self.roles[dept]

    def benign_rate(self, kind: str) -> float:
        return self.benign_rates.get(kind, 1.0)

    def summary(self) -> dict[str, Any]:
        """What ``meta.json`` records about the world (JSON-friendly)."""
        out: dict[str, Any] = {k: v for k, v in self.__dict__.items() if k != "roles"}
        out["offices"] = dict(zip((o[0] for o in OFFICES), self.offices, strict=True))
        return out


def _lognormal_weights(rng: random.Random, base: dict[str, Any], sigma: float) -> dict[str, float]:
    return {k: round(float(v) * rng.lognormvariate(0.0, sigma), 3) for k, v in base.items()}


def _departments(rng: random.Random) -> dict[str, float]:
    """Always IT admin and support (admins grant access, agents serve customers) and at least one
    technical team; every other department with probability 3/4; sizes vary widely."""
    chosen = {"it_admin", "support", rng.choice(("engineering", "security", "data_science"))}
    chosen |= {d for d in DEPARTMENT_WEIGHTS if rng.random() < 0.75}
    return _lognormal_weights(rng, {d: w for d, w in DEPARTMENT_WEIGHTS.items() if d in chosen}, 0.8)


def draw_world(seed: int) -> World:
    """A random organisation shape for ``seed`` (the same seed, the same world)."""
    rng = random.Random(f"world/{seed}")
    mu, sigma = rng.uniform(2.4, 3.3), rng.uniform(0.5, 1.1)
    days = rng.randint(21, 35)
    mean_events = 1.25 * pow(2.718281828, mu + sigma * sigma / 2)  # lookups and surges on top
    principals = max(150, min(rng.randint(200, 400), int(280_000 / (mean_events * days * 5 / 7))))
    lo = rng.uniform(0.0, 0.6)
    world = World(
        name=f"random-{seed}",
        departments=_departments(rng),
        roles={d: _lognormal_weights(rng, DEPARTMENTS[d][1], 0.6) for d in DEPARTMENTS},
        offices=tuple(_lognormal_weights(rng, {o[0]: w for o, w in zip(OFFICES, OFFICE_WEIGHTS, strict=True)},
                                         1.0).values()),
        activity_mu=round(mu, 3),
        activity_sigma=round(sigma, 3),
        activity_cap=400.0,
        weekend_probs=tuple(sorted(round(rng.uniform(0.0, 0.3), 3) for _ in range(4))),
        share_zero=round(rng.uniform(0.05, 0.5), 3),
        cross_share={r: round(rng.uniform(0.01, 0.15), 3) for r in SHAREABLE if rng.random() < 0.4},
        export_weight=round(rng.lognormvariate(0.0, 0.5), 3),
        export_sigma=round(rng.uniform(0.5, 1.2), 3),
        night_share=round(rng.uniform(0.0, 0.08), 3),
        evening_share=round(rng.uniform(0.0, 0.1), 3),
        occasional_share=round(rng.uniform(0.0, 0.15), 3),
        service_share=round(rng.uniform(0.02, 0.08), 3),
        rhythms=(rng.uniform(0.2, 1.0), rng.uniform(0.0, 1.0), rng.uniform(0.0, 1.0)),
        benign_rates={},
        incident_rate=round(rng.uniform(2.5, 4.0), 3),
        intensity=(round(lo, 3), round(min(1.0, lo + rng.uniform(0.4, 0.7)), 3)),
        principals=principals,
        days=days,
    )
    from .twins import RANDOM_BENIGN_RATE  # the benign kinds of random worlds live with their injectors

    rates = {kind: round(rng.lognormvariate(0.0, 0.5), 3) for kind in RANDOM_BENIGN_RATE}
    rates["travel"] = round(rng.uniform(0.5, 3.0), 3)  # some organisations travel a lot
    rates["new_joiner"] = round(rng.uniform(0.5, 3.0), 3)
    return replace(world, benign_rates=rates)
