"""Size and cost of the commons (issue 32): what one partition's partial weighs on the commons topic.

``python -m stream.bench.commons [--world] [--principals N] [--partitions P] [--seed S]``

``--world``: a default simulated world (``privwatch simulate``'s, N principals, 21 days) split by
principal into P partitions as Kafka's default partitioner splits it, each replayed into an engine of
its own. Otherwise the state benchmark's synthetic organisation (:func:`stream.bench.state.events`,
4 events per principal), N principals over P engines. Printed per partition: the signed record's
bytes (what the commons topic carries every ``commons_interval_s``), and the CPU time to seal it (the
poll loop's cost) and to verify and decode it (the reader thread's).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable
from typing import Any

from detectors.engine import Engine, EngineConfig
from detectors.events import Event
from stream.state import commons as records

KEY = b"commons-bench-key-0123456789abcdef"


def _world_events(principals: int, seed: int) -> Iterable[tuple[str, Event]]:
    import orjson

    from stream.contract.decode import decode
    from stream.simulate.generator import simulate

    docs, _ = simulate(seed, principals, 21)
    now = time.time()
    for doc in docs:
        line = orjson.dumps(doc)
        event = decode(line, now)
        yield str((doc["principal"] if doc["type"] == "access" else doc["target"])["id"]), event


def _synthetic_events(principals: int, seed: int) -> Iterable[tuple[str, Event]]:
    from stream.bench.state import events

    for event in events(principals, seed=seed):
        yield event.principal_id, event


def measure(world: bool, principals: int, partitions: int, seed: int = 1) -> dict[str, Any]:
    """Feed the engines, then seal and open each partition's partial once."""
    from kafka.partitioner.default import murmur2

    engines = [Engine(EngineConfig()) for _ in range(partitions)]
    fed = 0
    for key, event in (_world_events if world else _synthetic_events)(principals, seed):
        engines[(murmur2(key.encode()) & 0x7FFFFFFF) % partitions].process(event)
        fed += 1
    versions = {d.name: d.state_version for d in engines[0].detectors}
    rows = []
    for p, engine in enumerate(engines):
        t0 = time.process_time()
        rkey, value = records.seal(engine.partial(), versions, KEY, "1", "bench", p, partitions, 1, time.time())
        t1 = time.process_time()
        records.open_partial(value, rkey, {"1": KEY}, partitions, versions)
        t2 = time.process_time()
        rows.append({"partition": p, "principals": engine.n_principals(), "bytes": len(value),
                     "seal_ms": (t1 - t0) * 1000, "open_ms": (t2 - t1) * 1000})
    return {"world": "default simulated" if world else "synthetic", "principals": principals,
            "partitions": partitions, "events": fed, "rows": rows}


def format_table(result: dict[str, Any]) -> str:
    lines = [f"commons: {result['world']} organisation, {result['principals']:,} principals, "
             f"{result['events']:,} events, {result['partitions']} partitions",
             "partition  principals  record bytes  seal ms  open ms"]
    for r in result["rows"]:
        lines.append(f"{r['partition']:>9}  {r['principals']:>10,}  {r['bytes']:>12,}  {r['seal_ms']:>7.1f}  "
                     f"{r['open_ms']:>7.1f}")
    total = sum(r["bytes"] for r in result["rows"])
    lines.append(f"all partials: {total:,} bytes per interval")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stream.bench.commons", description=__doc__.split("\n\n")[0])
    parser.add_argument("--world", action="store_true", help="a default simulated world instead of the "
                                                             "synthetic organisation")
    parser.add_argument("--principals", type=int, default=500)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    print(format_table(measure(args.world, args.principals, args.partitions, args.seed)), file=sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
