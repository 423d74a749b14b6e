"""``privwatch evaluate DIR``: score privwatch and the baselines on a simulated, labelled stream."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .report import text_report
from .runner import evaluate_dir


def register(subparsers: Any) -> None:
    """Add the ``evaluate`` subcommand to an argparse ``subparsers`` object."""
    p = subparsers.add_parser(
        "evaluate", help="score privwatch and baselines on a simulated stream",
        description="Replay DIR/events.jsonl through privwatch and two baselines, score against "
                    "DIR/labels.jsonl, print a table, write DIR/evaluation.json and DIR/evaluation.html.")
    p.add_argument("directory", type=Path, help="output directory of `privwatch simulate`")
    p.add_argument("--no-baselines", action="store_true", help="score privwatch only")
    p.add_argument("--partitions", type=int, nargs="?", const=6, default=None, metavar="N",
                   help="replay each of N key partitions separately, as N service instances would "
                        "(Kafka's murmur2 partitioner; default N=6 when given without a number)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    directory: Path = args.directory
    if not (directory / "events.jsonl").exists() or not (directory / "labels.jsonl").exists():
        print(f"evaluate: {directory} has no events.jsonl and labels.jsonl (run `privwatch simulate`)",
              file=sys.stderr)
        return 2
    if args.partitions is not None and args.partitions < 1:
        print("evaluate: --partitions must be at least 1", file=sys.stderr)
        return 2
    payload = evaluate_dir(directory, baselines=not args.no_baselines, partitions=args.partitions)
    if not payload["results"]:
        print("evaluate: nothing to score", file=sys.stderr)
        return 1
    print(text_report(payload["results"]))
    print(f"\nwrote {directory / 'evaluation.json'} and {directory / 'evaluation.html'}")
    return 0
