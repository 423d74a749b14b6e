"""State bytes per principal for ``privwatch bench``.

Delegates to ``stream.statebench.run_state_benchmark`` when that module exists; otherwise feeds an
engine a few synthetic events for each of ``principals`` principals (realistic fields: peer group,
resource, source) and divides the growth of the engine's pickle by the number of principals.
"""

from __future__ import annotations

import gc
import importlib
import logging
import pickle
import random
from typing import Any

from detectors.engine import Engine, EngineConfig
from detectors.events import Event

log = logging.getLogger(__name__)

DEPARTMENTS = ("finance", "hr", "sales", "support", "engineering", "legal", "marketing", "it_admin")
ROLES = ("analyst", "manager", "engineer", "clerk")
RESOURCES = [(f"db-{i:02d}", "table", s, c) for i, (s, c) in enumerate(
    [("internal", ()), ("confidential", ("contact",)), ("restricted", ("financial",)), ("public", ())] * 10)]
ACTIONS = ("read", "read", "read", "query", "query", "write", "export")
T0 = 1_790_000_000.0


def synthetic_events(principals: int, events_each: int, seed: int = 1) -> list[Event]:
    """``events_each`` access events per principal over one working day, in event-time order."""
    rng = random.Random(seed)
    out = []
    for i in range(principals):
        pid, dept, role = f"u-{i:06d}", DEPARTMENTS[i % 8], ROLES[i % 4]
        for k in range(events_each):
            rid, rkind, sens, cats = rng.choice(RESOURCES)
            records = int(rng.lognormvariate(3, 1))
            out.append(Event(kind="access", event_id=f"e-{i}-{k}", ts=T0 + rng.uniform(0, 8 * 3600),
                             principal_id=pid, department=dept, role=role, action=rng.choice(ACTIONS),
                             resource_id=rid, resource_kind=rkind, sensitivity=sens, categories=cats,
                             records=records, bytes=records * 300, ip=f"10.{i % 200}.{i // 200 % 250}.7",
                             country="GB", device_id=f"lt-{i:06d}", user_agent="Mozilla/5.0"))
    out.sort(key=lambda e: e.ts)
    return out


def measure_direct(principals: int, events_each: int = 3) -> dict[str, Any]:
    engine = Engine(EngineConfig())
    empty = len(pickle.dumps(engine, protocol=pickle.HIGHEST_PROTOCOL))
    for event in synthetic_events(principals, events_each):
        engine.process(event)
    size = len(pickle.dumps(engine, protocol=pickle.HIGHEST_PROTOCOL))
    return {"source": "direct", "principals": engine.n_principals(), "events_each": events_each,
            "engine_bytes": size, "bytes_per_principal": round((size - empty) / max(1, engine.n_principals()), 1)}


def state_bytes_per_principal(principals: int) -> dict[str, Any]:
    """Use the shared state benchmark when present, else measure directly.

    The collector is paused meanwhile: only sizes are measured here, and full collections over a
    growing 100k-principal state would triple the time it takes.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _measure(principals)
    finally:
        if enabled:
            gc.enable()


def _measure(principals: int) -> dict[str, Any]:
    try:
        statebench: Any = importlib.import_module("stream.statebench")
    except ModuleNotFoundError:
        return measure_direct(principals)
    try:
        result = statebench.run_state_benchmark(principals)
    except Exception as exc:  # noqa: BLE001 - its interface is not settled yet; fall back, say so
        log.warning("stream.statebench failed (%s); measuring directly", exc)
        return measure_direct(principals)
    if isinstance(result, dict) and "bytes_per_principal" in result:
        return {"source": "stream.statebench", **result}
    if isinstance(result, int | float):
        return {"source": "stream.statebench", "principals": principals, "bytes_per_principal": float(result)}
    bpp = getattr(result, "bytes_per_principal", None)
    if bpp is None:
        log.warning("stream.statebench returned %r; measuring directly", type(result).__name__)
        return measure_direct(principals)
    return {"source": "stream.statebench", "principals": principals, "bytes_per_principal": float(bpp)}
