"""``privwatch replay INPUT --output ALERTS [--pretty]``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from stream.progress import colour_ok
from stream.replay.render import render_alert
from stream.replay.replay import replay_file


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("replay", help="run the engine over a JSONL file of events (backtests, reviews)",
                       description="Run the detection engine over a file of contract events in event-time "
                                   "order and write the alerts. Bad lines are counted and reported, never "
                                   "fatal; events out of event-time order are processed, counted and "
                                   "reported. The output is deterministic.")
    p.add_argument("input", help="events JSONL in event-time order, or - for stdin")
    p.add_argument("--output", "-o", default="-", help="alerts JSONL, or - for stdout (default)")
    p.add_argument("--pretty", action="store_true",
                   help="write alerts as short blocks for a person (colour on a terminal) instead of JSONL")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    write = None
    if args.pretty:
        colour = args.output == "-" and colour_ok(sys.stdout)

        def write(alert: dict[str, Any]) -> bytes:
            return (render_alert(alert, colour=colour) + "\n").encode()

    result = replay_file(args.input, args.output, write=write)
    reasons = ", ".join(f"{k}={v}" for k, v in sorted(result.reasons.items())) or "none"
    print(f"replay: {result.lines:,} lines, {result.processed:,} events, {result.rejected:,} rejected "
          f"({reasons}), {result.out_of_order:,} out of event-time order, {result.n_alerts:,} alerts",
          file=sys.stderr)
    if result.out_of_order:
        print("replay: warning: the input is not in event-time order; sort it by ts for results the "
              "service would give", file=sys.stderr)
    return 0
