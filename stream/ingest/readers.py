"""Raw records from files: JSON lines, a JSON array, CloudTrail's ``{"Records": [...]}``, a single JSON
object, or gzip of any of these (told by its magic bytes, not its name).

A file that is neither valid JSON as a whole nor JSON lines (a truncated or hand-edited export) is one
rejected record, ``malformed_json``, not a crash; in JSON lines each bad line is one.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from typing import Any

import orjson

from stream.errors import InputError
from stream.ingest.common import Reject

GZIP_MAGIC = b"\x1f\x8b"


def read_bytes(path: str) -> bytes:
    """The file's contents, gunzipped when gzip. InputError when it cannot be read."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    if raw[:2] == GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise InputError(f"{path} is not a readable gzip file: {exc}") from None
    return raw


def records(raw: bytes) -> Iterator[tuple[int, Any]]:
    """(position, record) for every record, where a record that cannot be parsed is a :class:`Reject`
    (position: the record's index in an array, or its line number in JSON lines).

    >>> [r for _, r in records(b'{"Records": [{"a": 1}, {"a": 2}]}')]
    [{'a': 1}, {'a': 2}]
    >>> [type(r).__name__ for _, r in records(b'{"a": 1}\\n{oops\\n')]
    ['dict', 'Reject']
    """
    body = raw.strip()
    if not body:
        return
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        doc = None
        lines = body.splitlines()
        if not _parses(lines[0]):
            yield 0, Reject("malformed_json", "neither one JSON document nor JSON lines")
            return
        for number, line in enumerate(lines, 1):
            if line.strip():
                try:
                    yield number, orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    yield number, Reject("malformed_json", str(exc)[:200])
        return
    if isinstance(doc, dict) and isinstance(doc.get("Records"), list):
        yield from enumerate(doc["Records"])
    elif isinstance(doc, list):
        yield from enumerate(doc)
    else:
        yield 0, doc


def _parses(line: bytes) -> bool:
    try:
        orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return True
