"""``privwatch evaluate DIR``: score privwatch and the baselines on a simulated, labelled stream;
``privwatch evaluate --worlds N``: the same on N random worlds, pooled."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from . import worlds_report
from .report import text_report
from .runner import evaluate_dir
from .worlds import DEPLOYED_PARTITIONS, SEED_SETS, evaluate_worlds


def register(subparsers: Any) -> None:
    """Add the ``evaluate`` subcommand to an argparse ``subparsers`` object."""
    p = subparsers.add_parser(
        "evaluate", help="score privwatch and baselines on a simulated stream",
        description="Replay DIR/events.jsonl through privwatch and two baselines, score against "
                    "DIR/labels.jsonl, print a table, write DIR/evaluation.json and DIR/evaluation.html. "
                    "With --worlds N instead of DIR: simulate N random worlds (seeds from a fixed list), "
                    "evaluate privwatch as one engine and as --partitions partitions, and the baselines, "
                    "on each, and report the pooled numbers.")
    p.add_argument("directory", type=Path, nargs="?", help="output directory of `privwatch simulate`")
    p.add_argument("--no-baselines", action="store_true", help="score privwatch only")
    p.add_argument("--partitions", type=int, nargs="?", const=6, default=None, metavar="N",
                   help="replay as N key partitions (Kafka's murmur2 partitioner), each partition's engine "
                        "in the input's order, sharing peer and organisation baselines as the service "
                        "does (default N=6 when given without a number; with --worlds both one engine "
                        "and N partitions are reported, default 6, 1: one engine only)")
    p.add_argument("--instances", type=int, default=1, metavar="K",
                   help="spread the partitions over K simulated instances round-robin: engines of one "
                        "instance share live, other instances' baselines arrive as copies every "
                        "--share-interval seconds of event time (with --worlds: reported besides one "
                        "instance; default 1)")
    p.add_argument("--share-interval", type=float, default=5.0, metavar="S",
                   help="seconds of event time between copies of other instances' baselines (the "
                        "service's publishing interval; default 5)")
    p.add_argument("--worlds", type=int, metavar="N", help="evaluate on N random worlds (simulated in memory)")
    p.add_argument("--seed-set", choices=sorted(SEED_SETS), default="tuning",
                   help="which fixed list of world seeds --worlds takes the first N of: tune only on "
                        "'tuning'; 'held-out' is for the final report")
    p.add_argument("--seeds", type=lambda v: [int(x) for x in v.split(",")], metavar="S1,S2,...",
                   help="with --worlds: these world seeds instead of a fixed list")
    p.add_argument("--principals", type=int, help="with --worlds: override each world's organisation size")
    p.add_argument("--days", type=int, help="with --worlds: override each world's period")
    p.add_argument("--output", type=Path, help="with --worlds: where to write (default out/worlds-SEED_SET)")
    p.set_defaults(func=run)


def run_worlds(args: argparse.Namespace) -> int:
    if args.directory is not None:
        print("evaluate: give DIR or --worlds N, not both", file=sys.stderr)
        return 2
    seeds = args.seeds or list(SEED_SETS[args.seed_set])[:args.worlds]
    if args.worlds < 1 or len(seeds) < args.worlds and not args.seeds:
        print(f"evaluate: --worlds must be 1 to {len(SEED_SETS[args.seed_set])}", file=sys.stderr)
        return 2
    name = "custom" if args.seeds else args.seed_set
    out = args.output or Path("out") / f"worlds-{name}"
    payload = evaluate_worlds(seeds, out, partitions=args.partitions or DEPLOYED_PARTITIONS,
                              baselines=not args.no_baselines, principals=args.principals, days=args.days,
                              title=f"{len(seeds)} random worlds ({name} seeds)", instances=args.instances,
                              share_interval_s=args.share_interval)
    print(worlds_report.text_report(payload))
    print(f"\nwrote {out / 'evaluation.json'} and {out / 'evaluation.html'}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.partitions is not None and args.partitions < 1 or args.instances < 1 or not args.share_interval > 0:
        print("evaluate: --partitions and --instances must be at least 1, --share-interval positive",
              file=sys.stderr)
        return 2
    if args.worlds is not None:
        return run_worlds(args)
    directory: Path | None = args.directory
    if directory is None:
        print("evaluate: give DIR (a `privwatch simulate` output) or --worlds N", file=sys.stderr)
        return 2
    if not (directory / "events.jsonl").exists() or not (directory / "labels.jsonl").exists():
        print(f"evaluate: {directory} has no events.jsonl and labels.jsonl (run `privwatch simulate`)",
              file=sys.stderr)
        return 2
    payload = evaluate_dir(directory, baselines=not args.no_baselines, partitions=args.partitions,
                           instances=args.instances, share_interval_s=args.share_interval)
    if not payload["results"]:
        print("evaluate: nothing to score", file=sys.stderr)
        return 1
    print(text_report(payload["results"]))
    print(f"\nwrote {directory / 'evaluation.json'} and {directory / 'evaluation.html'}")
    return 0
