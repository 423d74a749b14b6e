"""File mode: inputs -> events JSONL (in event-time order, as replay and the service expect), rejects
JSONL (each with its input, position, reason and the raw record), and the summary."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import IO, Any

import orjson

from stream.errors import InputError
from stream.ingest.pipeline import Pipeline
from stream.ingest.readers import read_bytes, records
from stream.ingest.summary import Summary

log = logging.getLogger(__name__)


def ingest_files(pipeline: Pipeline, inputs: list[str], output: str, rejects: str | None = None) -> Summary:
    """Map every record of ``inputs``; write the events to ``output`` sorted by (ts, event_id)."""
    missing = [path for path in inputs if not Path(path).is_file()]
    if missing:
        raise InputError(f"no such input file: {', '.join(missing)}")
    summary = Summary()
    events: list[tuple[bytes, bytes]] = []
    reject_out = _open(rejects) if rejects else None
    try:
        for path in inputs:
            for position, record in records(read_bytes(path)):
                outcome = pipeline.run(record)
                if outcome.reject is not None:
                    summary.rejected_one(outcome.reject.reason)
                    if reject_out is not None:
                        reject_out.write(_reject_line(path, position, outcome.reject, record))
                elif outcome.skip is not None:
                    summary.skipped_one(outcome.skip)
                else:
                    summary.mapped_one([etype for etype, _, _ in outcome.events])
                    events.extend((_sort_key(value), value) for _, _, value in outcome.events)
    finally:
        if reject_out is not None:
            reject_out.close()
    events.sort()
    with _open(output) as out:
        for _, value in events:
            out.write(value + b"\n")
    return summary


def _sort_key(value: bytes) -> bytes:
    doc = orjson.loads(value)
    return f"{doc['ts']}\0{doc['event_id']}".encode()


def _open(path: str) -> IO[bytes]:
    try:
        return open(path, "wb")  # noqa: SIM115 - closed by the caller
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror}") from None


def _reject_line(path: str, position: int, reject: Any, record: Any) -> bytes:
    raw = None if isinstance(record, type(reject)) else record
    return orjson.dumps({"input": path, "position": position, "reason": reject.reason, "detail": reject.detail,
                         "record": raw}) + b"\n"
