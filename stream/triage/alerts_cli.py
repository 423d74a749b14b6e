"""``privwatch alerts``: the incident queue in a terminal (``list``), one incident with its alerts (``show``).

From the triage database (``triage_database_url``), or with ``--from-topic`` from the alerts topic
itself, read whole into a database in memory and grouped the same way.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from stream.config import add_flags, load_settings
from stream.errors import InputError
from stream.settings import Settings
from stream.triage.store import LEVELS, STATUSES, QueueFilter, TriageStore


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("alerts", help="list incidents, show one with its alerts (triage database or topic)")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="incidents, most severe and recent first")
    listing.add_argument("--status", choices=STATUSES, default="open")
    listing.add_argument("--level", choices=LEVELS, default="medium", help="at least this level")
    listing.add_argument("--detector", default="")
    listing.add_argument("--max-age-h", type=float, default=0.0, help="last alert at most this many hours ago")
    listing.add_argument("--principal", default="")
    listing.add_argument("--limit", type=int, default=50)
    show = actions.add_parser("show", help="one incident (by incident id or any of its alert ids)")
    show.add_argument("id")
    for command in (listing, show):
        command.add_argument("--from-topic", action="store_true", help="read the alerts topic, not the database")
        add_flags(command)
        command.set_defaults(func=run)


def open_store(settings: Settings, from_topic: bool) -> TriageStore:
    from stream.triage.schema import connect

    if not from_topic:
        return TriageStore(connect(settings.triage_database_url), settings.correlation_window_s)
    store = TriageStore(connect("sqlite://"), settings.correlation_window_s)
    store.add_alerts(read_topic(settings))
    return store


def read_topic(settings: Settings, timeout_s: float = 60.0) -> list[dict[str, Any]]:
    """Every contract alert on the alerts topic, from its start to its end now."""
    from kafka import TopicPartition

    from stream.kafka import clients
    from stream.triage.ingest import alerts_in

    consumer = clients.consumer(settings, group_id=None)
    try:
        partitions = [TopicPartition(settings.alerts_topic, p)
                      for p in sorted(consumer.partitions_for_topic(settings.alerts_topic) or [])]
        if not partitions:
            raise InputError(f"alerts topic {settings.alerts_topic} does not exist")
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        records: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < ends[tp] for tp in partitions) and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
    finally:
        consumer.close()
    return alerts_in(records)[0]


def run(args: argparse.Namespace) -> int:
    settings = load_settings(vars(args))
    store = open_store(settings, args.from_topic)
    if args.action == "list":
        where = QueueFilter(args.status, args.level, args.detector, args.max_age_h, args.principal)
        counts = store.counts(where)
        print("  ".join(f"{status}: {n}" for status, n in counts.items()))
        for i in store.queue(where, limit=args.limit):
            print(f"{i['incident_id']}  {i['level']:8} {i['severity']:5.1f}  {i['n_alerts']:3} alert(s)  "
                  f"{i['principal_id']}  {i['title']}")
        return 0
    return show(store, args.id, settings)


def show(store: TriageStore, wanted: str, settings: Settings) -> int:
    from stream.triage.app import _when

    incident_id = wanted if store.incident(wanted) else store.incident_of(wanted)
    incident = store.incident(incident_id) if incident_id else None
    if incident is None:
        print(f"privwatch: no incident or alert {wanted}", file=sys.stderr)
        return 3
    print(f"{incident['title']}\n  incident {incident['incident_id']}  principal {incident['principal_id']}  "
          f"{incident['level']} {incident['severity']:.1f}  {incident['status']}"
          f"{' (' + incident['assignee'] + ')' if incident['assignee'] else ''}")
    if settings.triage_url:
        print(f"  {settings.triage_url.rstrip('/')}/incidents/{incident['incident_id']}")
    for alert in store.alerts_of(incident["incident_id"]):
        print(f"\n  {_when(alert['ts'])}  {alert['detector']}  {alert['level']} {alert['severity']:.1f}  "
              f"{alert['title']}\n    alert_id {alert['alert_id']}")
        for reason in alert["reasons"]:
            print(f"    - {reason}")
        print(f"    evidence: {', '.join(alert['evidence_event_ids'])}")
        if alert.get("suppressed_by"):
            by = alert["suppressed_by"]
            print(f"    suppressed by {by['verdict']} verdict {by['verdict_id']} of {by['analyst']}")
    return 0
