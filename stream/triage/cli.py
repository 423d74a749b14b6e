"""``privwatch triage``: ``serve`` the web app, ``keygen`` an analyst's key pair, ``passwd`` a sign-in hash."""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
import time
from pathlib import Path

from werkzeug.security import generate_password_hash

from stream.config import add_flags, load_settings
from stream.errors import ConfigError
from stream.feedback.signing import key_id_for, public_text, write_key_pair

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("triage", help="the analysts' web app, and their keys",
                       description="Analyst triage: an incident queue and incident pages fed from the alerts "
                                   "topic, with signed verdicts (docs/analyst-guide.md).")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    serve = actions.add_parser("serve", help="serve the triage web app (127.0.0.1:8080 by default)")
    add_flags(serve)
    serve.set_defaults(func=run_serve)
    keygen = actions.add_parser("keygen", help="make an analyst's Ed25519 key pair; prints the analysts-file entry")
    keygen.add_argument("analyst", help="the analyst's name, as in the analysts file")
    keygen.add_argument("--out", type=Path, required=True, help="private key file to write (mode 0600; never "
                                                                "overwritten)")
    keygen.set_defaults(func=run_keygen)
    passwd = actions.add_parser("passwd", help="hash a sign-in password (read from the terminal or stdin)")
    passwd.set_defaults(func=run_passwd)


def run_serve(args: argparse.Namespace) -> int:
    from stream.triage.server import TriageServer

    settings = load_settings(vars(args))
    logging.getLogger().setLevel(settings.log_level)
    TriageServer(settings).run()
    return 0


def run_keygen(args: argparse.Namespace) -> int:
    key = write_key_pair(args.out)
    key_id = key_id_for(args.analyst, time.time())
    print(f"# private key written to {args.out}: keep it to yourself; load it in the triage page or give it to\n"
          f"# privwatch feedback (--analyst-key-file). Add this to the analysts file:\n"
          f"[[analyst]]\nname = \"{args.analyst}\"\nprincipal_ids = []  # your own ids in the events\n"
          f"keys = [{{id = \"{key_id}\", public_key = \"{public_text(key)}\"}}]")
    return 0


def run_passwd(args: argparse.Namespace) -> int:
    password = getpass.getpass("password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
    if len(password) < 12:
        raise ConfigError("a sign-in password has at least 12 characters")
    print(generate_password_hash(password))
    return 0
