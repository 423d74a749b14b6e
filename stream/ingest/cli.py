"""``privwatch ingest``: file mode (inputs -> events JSONL, rejects, summary) or stream mode (a raw
topic -> the access, permission and authentication topics)."""

from __future__ import annotations

import argparse
import logging
import sys

import orjson

from stream.config import add_flags, load_settings
from stream.enrich.enricher import Enricher
from stream.enrich.reference import Reference
from stream.errors import ConfigError
from stream.ingest.formats import FORMATS
from stream.ingest.pipeline import Pipeline
from stream.ingest.settings import IngestSettings

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ingest", help="turn CloudTrail, GCP audit, Entra, Okta, Kubernetes audit or OCSF records into events",
        description="File mode: privwatch ingest --format FORMAT INPUT... --output EVENTS.jsonl [--rejects R] "
                    "[--summary S]. Stream mode: privwatch ingest --format FORMAT --from-topic RAW "
                    "--bootstrap-servers HOST:PORT. Formats: " + ", ".join(FORMATS) + ". Inputs: JSON lines, a "
                    "JSON array, CloudTrail {\"Records\": [...]} files, or gzip of any. Exit 0 when every input "
                    "was read, whatever was rejected.")
    add_flags(p, IngestSettings, skip=frozenset({"format", "directory_file", "catalog_file"}))
    p.add_argument("--format", dest="format", choices=list(FORMATS), default=None, help="source format (required)")
    p.add_argument("--directory", dest="directory_file", metavar="FILE", default=None,
                   help="people directory file (CSV, JSON or JSON lines); env PRIVWATCH_DIRECTORY_FILE")
    p.add_argument("--catalog", dest="catalog_file", metavar="FILE", default=None,
                   help="data catalog file (JSON rules); env PRIVWATCH_CATALOG_FILE")
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="file mode: raw record files")
    p.add_argument("--output", "-o", help="file mode: events JSONL, in event-time order")
    p.add_argument("--rejects", help="file mode: rejected records JSONL, each with its reason")
    p.add_argument("--summary", help="file mode: summary JSON (records = mapped + skipped + rejected)")
    p.add_argument("--max-idle-s", type=float, default=None, help="stream mode: exit after this long without records")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    flags = {k: v for k, v in vars(args).items()
             if k not in ("inputs", "output", "rejects", "summary", "func", "max_idle_s")}
    settings: IngestSettings = load_settings(flags, model=IngestSettings, section="ingest")
    if settings.format is None:
        raise ConfigError("give --format (one of " + ", ".join(FORMATS) + ")")
    if settings.from_topic:
        if args.inputs or args.output:
            raise ConfigError("stream mode (--from-topic) takes no INPUT files or --output")
        from stream.ingest.streaming import run_stream

        return run_stream(settings, args.max_idle_s)
    if not args.inputs or not args.output:
        raise ConfigError("file mode needs INPUT files and --output (or --from-topic for stream mode)")
    return _files(settings, args)


def _files(settings: IngestSettings, args: argparse.Namespace) -> int:
    from stream.ingest.files import ingest_files

    if settings.directory_topic or settings.catalog_topic:
        raise ConfigError("file mode reads the directory and catalog from files (--directory, --catalog)")
    reference = Reference(settings)
    enricher = Enricher(reference.directory, reference.catalog, settings.admin_roles, settings.admin_groups,
                        resolve=True)
    pipeline = Pipeline(settings.format or "", enricher, settings.privileged_permissions)
    summary = ingest_files(pipeline, args.inputs, args.output, args.rejects)
    if args.summary:
        with open(args.summary, "wb") as fh:
            fh.write(orjson.dumps(summary.as_dict(), option=orjson.OPT_INDENT_2) + b"\n")
    print(f"ingest: {summary.line()}", file=sys.stderr)
    return 0
