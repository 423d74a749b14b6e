"""What one principal's record costs to restore, by step: verifying it, decoding it, putting it back.

``python -m stream.bench.records [--principals N] [--rounds R]``

One engine learns :mod:`stream.bench.state`'s events for ``N`` principals; each principal's record is
encoded and sealed as a checkpoint writes it; then, ``R`` times into a fresh engine, each record is
verified (signature and digest contribution), decoded and restored. Prints the best round's CPU
microseconds per principal for each step. No topic and no reading: the record's own cost, which
``stream.bench.state``'s restore adds the reading of the state topic to.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time

from detectors.engine import Engine, EngineConfig
from detectors.portable import export_principal, restore_principal
from stream.bench.state import events
from stream.state import records

KEY = b"records-bench-key-0123456789abcdef"


def sealed_records(n_principals: int) -> list[tuple[str, bytes, bytes]]:
    """(principal, record key, sealed value) of each principal of a fed engine."""
    engine = Engine(EngineConfig(max_principals=max(n_principals, 1)))
    for event in events(n_principals, 4):
        engine.process(event)
    out = []
    for pid in engine.profiles:
        state = export_principal(engine, pid)
        assert state is not None
        key = records.record_key("bench/u/", pid, 0)
        out.append((pid, key, records.seal(KEY, "k1", key, 0, 1, 1, records.encode_state(state))))
    return out


def restore_costs(sealed: list[tuple[str, bytes, bytes]], rounds: int = 3) -> dict[str, float]:
    """Best round's CPU microseconds per principal: verify, decode, restore, and their total."""
    best: dict[str, float] = {}
    for _ in range(rounds):
        engine = Engine(EngineConfig(max_principals=max(len(sealed), 1)))
        spent = {"verify_us": 0.0, "decode_us": 0.0, "restore_us": 0.0}
        gc.disable()  # as a restore runs (stream.state.store pauses the collector)
        try:
            for pid, key, value in sealed:
                started = time.process_time()
                _, payload = records.open_record(value, key, {"k1": KEY})
                records.contribution(KEY, pid, 0, 1)
                verified = time.process_time()
                state, _ = records.decode_state(payload)
                decoded = time.process_time()
                restore_principal(engine, pid, state)
                spent["verify_us"] += verified - started
                spent["decode_us"] += decoded - verified
                spent["restore_us"] += time.process_time() - decoded
        finally:
            gc.enable()
        spent["total_us"] = sum(spent.values())
        for name, seconds in spent.items():
            best[name] = min(best.get(name, float("inf")), seconds / max(len(sealed), 1) * 1e6)
    return {name: round(value, 1) for name, value in best.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stream.bench.records", description=__doc__.splitlines()[0])
    parser.add_argument("--principals", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    for name, value in restore_costs(sealed_records(args.principals), args.rounds).items():
        print(f"{name:<12} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
