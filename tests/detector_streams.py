"""Seeded, hand-built event streams for detector tests: a small organisation's routine, plus helpers
to add one incident or its benign twin on top. Events are :class:`detectors.events.Event` objects,
no JSON, no broker."""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from detectors.engine import Engine, EngineConfig
from detectors.events import Event

T0 = 1_790_812_800.0  # 2026-10-01T00:00:00Z, a Thursday
DAY = 86_400.0
HOUR = 3_600.0
PAGING = frozenset({"medium", "high", "critical"})

RESOURCES = {
    "support": [
        ("customers.profile", "restricted", ("pii.contact",)),
        ("support.tickets", "confidential", ("pii.contact",)),
        ("support.macros", "internal", ()),
    ],
    "hr": [
        ("hr.employees", "restricted", ("pii.hr",)),
        ("hr.medical_leave", "restricted", ("health", "pii.hr")),
    ],
    "finance": [
        ("finance.ledger", "confidential", ()),
        ("finance.invoices", "confidential", ("pii.financial",)),
    ],
}


def principal_fields(pid: str, dept: str, role: str, k: int) -> dict[str, Any]:
    return {
        "principal_id": pid,
        "department": dept,
        "role": role,
        "ip": f"10.{k % 200}.1.{k % 250}",
        "country": "GB",
        "device_id": f"lt-{pid}",
        "user_agent": "Mozilla/5.0 (Windows NT 10.0) Chrome/126.0",
    }


def routine(
    seed: int = 1,
    days: int = 12,
    depts: Iterable[tuple[str, str, int]] = (
        ("support", "agent", 8),
        ("hr", "partner", 4),
        ("finance", "analyst", 6),
    ),
    per_day: int = 25,
    services: int = 1,
) -> list[Event]:
    """``days`` of office-hours routine for a few teams (weekends off) and 24x7 service accounts."""
    rng = random.Random(seed)
    events: list[Event] = []
    k = 0
    for dept, role, n in depts:
        for i in range(n):
            k += 1
            pid = f"{dept[:2]}-{i:03d}"
            who = principal_fields(pid, dept, role, k)
            for d in range(days):
                if (d + 3) % 7 >= 5:  # T0 is a Thursday: days 2, 3 are the weekend
                    continue
                for j in range(per_day):
                    ts = T0 + d * DAY + 9 * HOUR + rng.random() * 8 * HOUR
                    events.append(_routine_access(rng, who, dept, ts, f"{pid}-{d}-{j}"))
    for s in range(services):
        pid = f"svc-etl-{s:02d}"
        for d in range(days):
            for j in range(96):
                ts = T0 + d * DAY + j * 900 + rng.random() * 60
                events.append(
                    Event(
                        kind="access",
                        event_id=f"{pid}-{d}-{j}",
                        ts=ts,
                        principal_id=pid,
                        principal_kind="service",
                        department="data_science",
                        role="service",
                        action="query" if j % 3 else "write",
                        resource_id="warehouse.orders",
                        resource_kind="table",
                        sensitivity="confidential",
                        categories=("pii.financial",),
                        records=int(2000 * rng.lognormvariate(0, 0.3)),
                        ip=f"10.200.{s}.10",
                        country="GB",
                        device_id=f"host-etl-{s}",
                        user_agent="etl-runner/2.1",
                    )
                )
    events.sort(key=lambda e: e.ts)
    return events


def _routine_access(rng: random.Random, who: dict[str, Any], dept: str, ts: float, event_id: str) -> Event:
    rid, sens, cats = rng.choice(RESOURCES[dept])
    action = rng.choices(("read", "query", "export"), weights=(70, 25, 5))[0]
    records = max(1, int({"read": 1, "query": 40, "export": 300}[action] * rng.lognormvariate(0, 0.8)))
    refs = (f"s-{rng.randrange(100_000)}",) if action == "read" and dept == "support" else ()
    return Event(
        kind="access",
        event_id=event_id,
        ts=ts,
        principal_kind="human",
        action=action,
        resource_id=rid,
        resource_kind="table",
        sensitivity=sens,
        categories=cats,
        records=records,
        subjects=len(refs) or min(records, 50),
        subject_refs=refs,
        **who,
    )


def access(like: Event, event_id: str, ts: float, **changes: Any) -> Event:
    """A copy of a routine event of the same principal with a new id, time and changes."""
    return replace(like, event_id=event_id, ts=ts, **changes)


def grant(
    target: Event,
    event_id: str,
    ts: float,
    actor: str = "it-001",
    actor_role: str = "admin",
    actor_department: str = "it_admin",
    **changes: Any,
) -> Event:
    fields: dict[str, Any] = {
        "kind": "permission",
        "event_id": event_id,
        "ts": ts,
        "principal_id": target.principal_id,
        "principal_kind": target.principal_kind,
        "department": target.department,
        "role": target.role,
        "actor_id": actor,
        "actor_role": actor_role,
        "actor_department": actor_department,
        "change": "grant",
        "permission": "read:finance.invoices",
        "resource_id": "finance.invoices",
        "resource_kind": "table",
        "sensitivity": "confidential",
        "categories": ("pii.financial",),
        "ticket": "CHG-1",
        "ip": "10.9.0.4",
        "country": "GB",
    }
    fields.update(changes)
    return Event(**fields)


def last_of(events: list[Event], principal_id: str) -> Event:
    return next(e for e in reversed(events) if e.principal_id == principal_id and e.kind == "access")


#: the test organisation's admins, as its configuration would name them
ADMINS: dict[str, Any] = {"admin_roles": ("admin",), "admin_departments": ("it_admin",)}


def run_engine(events: Iterable[Event], **config: Any) -> list[dict[str, Any]]:
    engine = Engine(EngineConfig(**(ADMINS | config)))
    alerts: list[dict[str, Any]] = []
    for event in sorted(events, key=lambda e: e.ts):
        alerts.extend(engine.process(event))
    return alerts


def pages(
    alerts: list[dict[str, Any]], principal_id: str | None = None, detector: str | None = None
) -> list[dict]:
    return [
        a
        for a in alerts
        if a["level"] in PAGING
        and (principal_id is None or a["principal_id"] == principal_id)
        and (detector is None or a["detector"] == detector)
    ]
