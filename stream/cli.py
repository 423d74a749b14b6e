"""The ``privwatch`` command (also ``python -m stream``).

Errors an operator can meet (a broker that does not answer, a busy port, a missing file, a bad
setting) end the command with one line on stderr and the exit code of :mod:`stream.errors`.
"""

from __future__ import annotations

import argparse
import faulthandler
import importlib
import logging
import signal
import sys

from stream import __version__
from stream.errors import PrivwatchError

log = logging.getLogger("privwatch")

#: Subcommands living in their own modules; each exposes ``register(subparsers)``.
PLUGINS = ("stream.service.run", "stream.replay.cli", "stream.simulate.cli", "stream.evaluate.cli",
           "stream.evaluate.feedback", "stream.bench.cli", "stream.demo", "stream.ingest.cli",
           "stream.alertmanager.deliver", "stream.triage.cli", "stream.triage.alerts_cli", "stream.feedback.cli",
           "stream.service.state_cli")

EXIT_CODES = """exit codes: 0 done, 1 unexpected failure, 2 usage or configuration, 3 input file,
4 Kafka unreachable, 5 topics missing, misconfigured or not co-partitioned, 6 port busy,
7 stopped with alerts or dead letters unacknowledged (nothing committed past them), 130 interrupted"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="privwatch", description="Streaming privacy-incident detection on Kafka",
                                     epilog=EXIT_CODES)
    parser.add_argument("--version", action="version", version=f"privwatch {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in PLUGINS:
        importlib.import_module(name).register(sub)
    for command in sub.choices.values():  # -v works after the subcommand too
        command.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="debug logging")
    return parser


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level, logging.INFO),
        format="%(asctime)s level=%(levelname)s logger=%(name)s %(message)s",
        stream=sys.stderr,
    )
    # kafka-python reports every failed connection attempt at WARNING or ERROR while it retries; what
    # matters reaches the operator as privwatch's own errors and metrics. Shown with -v.
    logging.getLogger("kafka").setLevel(logging.DEBUG if level == "DEBUG" else logging.CRITICAL)


def main(argv: list[str] | None = None) -> int:
    faulthandler.register(signal.SIGUSR1)  # `kill -USR1 PID` dumps every thread's stack to stderr
    args = build_parser().parse_args(argv)
    configure_logging("DEBUG" if args.verbose else getattr(args, "log_level", None) or "INFO")
    try:
        return int(args.func(args) or 0)
    except PrivwatchError as exc:
        print(f"privwatch: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
