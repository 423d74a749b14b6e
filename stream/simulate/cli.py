"""``privwatch simulate``: write a labelled organisation stream to files, or produce it to Kafka."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from stream.progress import bar

from .generator import DEFAULT_START, simulate
from .output import ACCESS_TOPIC, PERMISSION_TOPIC, meta, produce_to_kafka, write_outputs
from .world import World, draw_world


def register(subparsers: Any) -> None:
    """Add the ``simulate`` subcommand to an argparse ``subparsers`` object."""
    p = subparsers.add_parser(
        "simulate", help="simulate an organisation's events with labelled incidents",
        description="Simulate a realistic organisation's access and permission events with labelled "
                    "privacy incidents and benign shifts: DIR/events.jsonl, DIR/labels.jsonl, DIR/meta.json.")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--world", choices=("default", "random"), default="default",
                   help="default: the organisation's usual shape; random: departments, roles, volumes, sharing, "
                        "shifts, services, habits, benign twins and incident intensity drawn from wide ranges "
                        "for --seed (labels then carry each incident's intensity)")
    p.add_argument("--principals", type=int, default=None,
                   help="humans and service accounts (>= 20; default 500, or what the random world draws)")
    p.add_argument("--days", type=int, default=None, help="default 21, or what the random world draws")
    p.add_argument("--output", type=Path, help="output directory (required unless --kafka)")
    p.add_argument("--incidents", type=int, default=None,
                   help="total incidents (default: about 2 of each kind per 500 principals x 21 days)")
    p.add_argument("--baseline-days", type=int, default=8, help="days without incidents at the start")
    p.add_argument("--recurring-jobs", type=int, default=0,
                   help="add N approved recurring bulk exports (benign, they page until analyst feedback)")
    p.add_argument("--start", default=DEFAULT_START, help="first day (UTC), YYYY-MM-DD")
    p.add_argument("--format", dest="format", choices=("contract", "cloudtrail"), default="contract",
                   help="contract: events.jsonl; cloudtrail: raw CloudTrail records (cloudtrail.jsonl) with "
                        "directory.jsonl, catalog.json and ingest.toml, for privwatch ingest, then evaluate")
    p.add_argument("--kafka", action="store_true", help="produce the events to Kafka")
    p.add_argument("--bootstrap-servers", default="127.0.0.1:9092")
    p.add_argument("--access-topic", default=ACCESS_TOPIC)
    p.add_argument("--permission-topic", default=PERMISSION_TOPIC)
    p.add_argument("--speedup", type=float, default=0.0,
                   help="event time runs this many times faster than real time (0: as fast as possible)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.output is None and not args.kafka:
        print("simulate: give --output DIR, --kafka, or both", file=sys.stderr)
        return 2
    if args.format != "contract" and (args.kafka or args.output is None):
        print("simulate: --format cloudtrail writes files only (--output DIR)", file=sys.stderr)
        return 2
    world = draw_world(args.seed) if args.world == "random" else World()
    args.principals = args.principals or world.principals
    args.days = args.days or world.days
    began = time.perf_counter()
    try:
        events, labels = simulate(args.seed, args.principals, args.days, args.incidents,
                                  args.baseline_days, args.start, args.recurring_jobs, world)
    except (ValueError, LookupError) as exc:
        print(f"simulate: {exc}", file=sys.stderr)
        return 2
    took = time.perf_counter() - began
    print(f"simulate: {len(events):,} events, {len(labels)} labels in {took:.1f} s "
          f"({len(events) / max(took, 1e-9):,.0f} events/s)", file=sys.stderr)
    info = meta(args.seed, args.principals, args.days, args.start, args.baseline_days, events, labels,
                world.summary() if world.graded else None)
    if args.output is not None and args.format == "cloudtrail":
        from .cloudtrail import write_cloudtrail

        write_cloudtrail(args.output, events, labels, info)
        d = args.output
        print(f"simulate: wrote {d}/cloudtrail.jsonl and its directory, catalog and labels; next: privwatch "
              f"ingest --config {d}/ingest.toml --format cloudtrail --directory {d}/directory.jsonl --catalog "
              f"{d}/catalog.json {d}/cloudtrail.jsonl --output {d}/events.jsonl && privwatch evaluate {d}",
              file=sys.stderr)
    elif args.output is not None:
        write_outputs(args.output, events, labels, info)
        print(f"simulate: wrote {args.output}/events.jsonl, labels.jsonl, meta.json", file=sys.stderr)
    if args.kafka:
        from kafka.errors import KafkaError

        if args.output is None:
            print("simulate: no --output, so the labels are not kept", file=sys.stderr)
        try:
            with bar(len(events), "simulate: producing", unit="ev") as shown:
                produce_to_kafka(events, args.bootstrap_servers, args.access_topic, args.permission_topic,
                                 args.speedup, on_progress=lambda n: shown.update(n - shown.n))
        except KafkaError as exc:
            print(f"simulate: cannot produce to {args.bootstrap_servers}: {exc!r}", file=sys.stderr)
            return 1
    return 0
