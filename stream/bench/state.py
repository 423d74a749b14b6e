"""State snapshot benchmark: how big and how slow is one partition's snapshot, in the loop and forked?

``run_state_benchmark(n_principals)`` builds an engine with the default detectors, feeds a few
realistic events per principal (varied departments, resources, countries, devices, actions), then
measures the snapshot (``zlib(pickle(engine))``) size, the time to encode and sign it, and the time
to verify and restore it — the work the service does per partition on a snapshot and on a
restore, without Kafka. ``python -m stream.bench.state [--principals N]`` prints a table.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections.abc import Iterator
from typing import Any

from detectors.engine import Engine, EngineConfig
from detectors.events import Event
from stream.ops.gctune import paused_gc
from stream.state import snapshot
from stream.state.forked import Forked

T0 = 1_790_000_000.0  # event time origin (2026-09)
DEPARTMENTS = ("support", "sales", "finance", "engineering", "hr", "marketing", "legal", "ops")
ROLES = ("agent", "analyst", "manager", "engineer", "admin")
COUNTRIES = ("GB", "DE", "FR", "US", "NL", "IE", "ES", "PL")
RESOURCES = (
    ("customers.profile", "table", "restricted", ("pii.contact",)),
    ("customers.payment", "table", "restricted", ("pii.financial",)),
    ("orders.history", "table", "internal", ()),
    ("hr.salaries", "table", "restricted", ("pii.financial", "hr")),
    ("tickets.messages", "table", "confidential", ("pii.contact",)),
    ("marketing.segments", "dataset", "internal", ()),
    ("reports.quarterly", "file", "confidential", ()),
    ("crm.contacts", "api", "restricted", ("pii.contact",)),
)
ACTIONS = ("read", "read", "read", "query", "export", "update")
BENCH_KEY = b"statebench-key-0123456789abcdef"


def events(n_principals: int, per_principal: int = 4, seed: int = 7) -> Iterator[Event]:
    """``per_principal`` access events per principal over a few days, interleaved in time order."""
    rnd = random.Random(seed)
    people = []
    for i in range(n_principals):
        dept = DEPARTMENTS[i % len(DEPARTMENTS)]
        people.append((f"u-{i:07d}", dept, ROLES[(i // 8) % len(ROLES)], COUNTRIES[rnd.randrange(3)],
                       rnd.sample(range(len(RESOURCES)), 3)))
    span = 3 * 86_400.0
    for k in range(per_principal):
        for i, (pid, dept, role, home, favourites) in enumerate(people):
            ts = T0 + k * span / per_principal + (i / max(n_principals, 1)) * span / per_principal
            rid, rkind, sens, cats = RESOURCES[favourites[rnd.randrange(3)] if rnd.random() < 0.9
                                               else rnd.randrange(len(RESOURCES))]
            action = ACTIONS[rnd.randrange(len(ACTIONS))]
            records = rnd.randint(1, 40) if action != "export" else rnd.randint(10, 500)
            yield Event(
                kind="access", event_id=f"{pid}-{k}", ts=ts, principal_id=pid, department=dept, role=role,
                action=action, resource_id=rid, resource_kind=rkind, sensitivity=sens, categories=cats,
                records=records, bytes=records * rnd.randint(200, 2000), subjects=records,
                subject_refs=tuple(f"s-{rnd.randrange(10**6):06x}" for _ in range(min(records, 3))),
                ip=f"10.{i % 250}.{k}.{rnd.randrange(250)}",
                country=home if rnd.random() < 0.97 else COUNTRIES[rnd.randrange(len(COUNTRIES))],
                device_id=f"lt-{pid}" if rnd.random() < 0.95 else f"ph-{pid}", user_agent="Mozilla/5.0",
                purpose=f"ticket-{rnd.randrange(10**5)}",
            )


def private_dirty_mb(pid: int) -> float:
    """Memory a process has written to itself (``Private_Dirty``): for a forked child, what it copied
    from its parent. 0 where ``/proc`` has no ``smaps_rollup``."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            return sum(int(line.split()[1]) for line in fh if line.startswith("Private_Dirty:")) / 1024.0
    except (OSError, ValueError, IndexError):
        return 0.0


def run_state_benchmark(n_principals: int = 100_000, per_principal: int = 4) -> dict[str, Any]:
    """Build one partition's engine for ``n_principals`` and measure its snapshot.

    Returns ``principals``, ``events``, ``feed_s``, ``snapshot_bytes`` (compressed payload),
    ``manifest_bytes``, ``chunks``, ``bytes_per_principal``, ``write_s`` (pickle, compress, hash
    and sign), ``fork_s`` (how long the loop waits for a background snapshot: the fork), ``child_s``
    and ``child_copied_mb`` (the forked child encoding it; the memory it copied from the parent,
    sampled), ``parent_rss_mb``, ``background_payload_identical``, ``restore_s`` (verify, hash,
    decompress, unpickle), and ``restored_ok``.
    """
    engine = Engine(EngineConfig())
    started = time.perf_counter()
    n_events = 0
    for event in events(n_principals, per_principal):
        engine.process(event)
        n_events += 1
    feed_s = time.perf_counter() - started
    offsets = {"access": n_events, "permission": 0}

    started = time.perf_counter()
    snap = snapshot.encode(engine, offsets, 0, 1, BENCH_KEY, "bench")
    write_s = time.perf_counter() - started

    started = time.perf_counter()
    forked = Forked({0: (engine, [])}, {0: offsets}, taken_at=0.0)
    fork_s = time.perf_counter() - started  # what the service's loop waits for a background snapshot
    copied = 0.0
    while not forked.done():
        copied = max(copied, private_dirty_mb(forked.pid))
        time.sleep(0.01)
    same = forked.payloads() == {0: b"".join(snap.chunks)}  # the payload encoded in the loop above

    started = time.perf_counter()
    manifest = snapshot.read_manifest(snap.manifest, BENCH_KEY)
    restored = snapshot.decode(manifest, list(snap.chunks))
    restore_s = time.perf_counter() - started

    ok = restored.n_principals() == engine.n_principals() and all(
        restored.profiles[p].n_events == prof.n_events for p, prof in engine.profiles.items())
    return {
        "principals": engine.n_principals(),
        "events": n_events,
        "feed_s": round(feed_s, 3),
        "snapshot_bytes": snap.payload_bytes,
        "manifest_bytes": len(snap.manifest),
        "chunks": len(snap.chunks),
        "bytes_per_principal": round(snap.payload_bytes / max(engine.n_principals(), 1), 1),
        "write_s": round(write_s, 3),
        "fork_s": round(fork_s, 4),
        "child_s": round(forked.seconds, 3),
        "child_copied_mb": round(copied, 1),
        "parent_rss_mb": round(private_dirty_mb(os.getpid()), 1),
        "background_payload_identical": same,
        "restore_s": round(restore_s, 3),
        "restored_ok": ok,
    }


def state_bytes_per_principal(principals: int) -> dict[str, Any]:
    """:func:`run_state_benchmark` as ``privwatch bench`` runs it, with the garbage collector paused
    (only sizes and times are measured, and full collections over a growing 100k-principal state
    would triple the time)."""
    with paused_gc():
        return {"source": "stream.bench.state", **run_state_benchmark(principals)}


def format_table(result: dict[str, Any]) -> str:
    labels = {
        "principals": "principals", "events": "events fed", "feed_s": "feed time (s)",
        "snapshot_bytes": "snapshot payload (bytes)", "manifest_bytes": "manifest (bytes)",
        "chunks": "chunks", "bytes_per_principal": "bytes per principal",
        "write_s": "write in the loop: encode+sign (s)",
        "fork_s": "write in background: loop blocked (s)", "child_s": "background child: encode (s)",
        "child_copied_mb": "background child: memory copied (MB)", "parent_rss_mb": "service: private memory (MB)",
        "background_payload_identical": "background payload identical",
        "restore_s": "restore: verify+decode (s)",
        "restored_ok": "restored state identical",
    }
    width = max(map(len, labels.values()))
    return "\n".join(f"{labels[k]:<{width}}  {v}" for k, v in result.items() if k in labels)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stream.bench.state", description=__doc__.splitlines()[0])
    parser.add_argument("--principals", type=int, default=100_000)
    parser.add_argument("--events-per-principal", type=int, default=4)
    args = parser.parse_args(argv)
    print(format_table(run_state_benchmark(args.principals, args.events_per_principal)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
