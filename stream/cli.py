"""The ``privwatch`` command (also ``python -m stream``)."""

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
           "stream.evaluate.feedback", "stream.bench.cli", "stream.demo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="privwatch", description="Streaming privacy-incident detection on Kafka")
    parser.add_argument("--version", action="version", version=f"privwatch {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in PLUGINS:
        importlib.import_module(name).register(sub)
    return parser


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level, logging.INFO),
        format="%(asctime)s level=%(levelname)s logger=%(name)s %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("kafka").setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    faulthandler.register(signal.SIGUSR1)  # `kill -USR1 PID` dumps every thread's stack to stderr
    args = build_parser().parse_args(argv)
    configure_logging("DEBUG" if args.verbose else getattr(args, "log_level", None) or "INFO")
    try:
        return int(args.func(args) or 0)
    except PrivwatchError as exc:
        log.error("%s", exc)
        print(f"privwatch: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
