"""``privwatch feedback ALERT_ID --verdict V --scope S``: a signed verdict onto the feedback topic.

The analyst's private key comes from ``analyst_key_file`` or the PEM in ``PRIVWATCH_ANALYST_KEY``,
never from a flag's value (``ps`` shows flags). ``--revoke VERDICT_ID`` takes one back.
"""

from __future__ import annotations

import argparse
import sys
import time

import orjson

from stream.config import add_flags, load_settings
from stream.errors import ConfigError
from stream.feedback.analysts import load_analysts
from stream.feedback.keys import analyst_key
from stream.feedback.signing import MAX_EXPIRY_DAYS, sign, verdict_record, verify
from stream.kafka import clients
from stream.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("feedback", help="give a signed verdict on an alert (or revoke one)",
                       description="Sign a verdict on ALERT_ID with the analyst's key and publish it to the "
                                   "feedback topic. The service applies it only if the signature verifies with "
                                   "the analyst's public key in its analysts file (docs/analyst-guide.md).")
    p.add_argument("alert_id", help="the alert judged (its alert_id annotation, or from privwatch alerts)")
    p.add_argument("--verdict", choices=("true_positive", "false_positive", "benign"))
    p.add_argument("--scope", choices=("alert", "detector", "resource"), default="alert",
                   help="alert: this alert only; detector: its detector for its principal; resource: the same, "
                        "on --resource only")
    p.add_argument("--days", type=float, default=7.0, help=f"how long it lasts (at most {MAX_EXPIRY_DAYS})")
    p.add_argument("--resource", help="with --scope resource: the resource")
    p.add_argument("--note", help="why (kept with the verdict and covered by the signature)")
    p.add_argument("--revoke", metavar="VERDICT_ID", help="revoke this verdict of ALERT_ID instead")
    p.add_argument("--dry-run", action="store_true", help="print the signed record, publish nothing")
    add_flags(p)
    p.set_defaults(func=run)


def signed_record(args: argparse.Namespace, settings: Settings) -> dict:
    if not settings.analyst_name or not settings.analyst_key_id:
        raise ConfigError("set analyst_name and analyst_key_id (flags, PRIVWATCH_ANALYST_NAME/_KEY_ID or the "
                          "config file)")
    if args.revoke:
        record = verdict_record(args.alert_id, "revoke", "alert", settings.analyst_name, settings.analyst_key_id,
                                time.time(), MAX_EXPIRY_DAYS, revokes=args.revoke, note=args.note)
    else:
        if not args.verdict:
            raise ConfigError("give --verdict (or --revoke VERDICT_ID)")
        if args.scope == "resource" and not args.resource:
            raise ConfigError("--scope resource needs --resource")
        try:
            record = verdict_record(args.alert_id, args.verdict, args.scope, settings.analyst_name,
                                    settings.analyst_key_id, time.time(), args.days,
                                    resource_id=args.resource if args.scope == "resource" else None, note=args.note)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    signed = sign(record, analyst_key(settings))
    if settings.analysts_file:  # say so now rather than have the service refuse it
        public = load_analysts(settings.analysts_file).key(settings.analyst_name, settings.analyst_key_id)
        if public is None or not verify(signed, public):
            raise ConfigError(f"the key does not match {settings.analyst_name}'s key {settings.analyst_key_id} in "
                              f"{settings.analysts_file}")
    return signed


def run(args: argparse.Namespace) -> int:
    settings = load_settings(vars(args))
    record = signed_record(args, settings)
    if not args.dry_run:
        from stream.feedback.publish import FeedbackPublisher

        publisher = FeedbackPublisher(clients.producer(settings), settings.feedback_topic)
        try:
            publisher(record)
        finally:
            publisher.close()
    sys.stdout.write(orjson.dumps(record).decode() + "\n")
    print(f"{'signed' if args.dry_run else 'published'} verdict {record['verdict_id']}", file=sys.stderr)
    return 0
