"""``privwatch replay INPUT --output ALERTS``."""

from __future__ import annotations

import argparse
import sys

from stream.replay.replay import replay_file


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("replay", help="run the engine over a JSONL file of events (backtests, reviews)")
    p.add_argument("input", help="events JSONL in event-time order, or - for stdin")
    p.add_argument("--output", "-o", default="-", help="alerts JSONL, or - for stdout (default)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    result = replay_file(args.input, args.output)
    reasons = ", ".join(f"{k}={v}" for k, v in sorted(result.reasons.items())) or "none"
    print(
        f"replay: {result.lines:,} lines, {result.processed:,} events, {result.rejected:,} rejected "
        f"({reasons}), {result.n_alerts:,} alerts",
        file=sys.stderr,
    )
    return 0
