"""Contract-valid event documents for tests, built from the contract's examples (``stream/contract/``)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import orjson

from stream.contract import SCHEMA_DIR as CONTRACT

T0 = datetime(2026, 10, 1, tzinfo=UTC).timestamp()


def example(name: str) -> dict[str, Any]:
    return orjson.loads((CONTRACT / "examples" / f"{name}.json").read_bytes())


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def access(event_id: str, ts: float, principal: str = "u-4821", **fields: Any) -> dict[str, Any]:
    doc = copy.deepcopy(example("access-event"))
    doc.update(event_id=event_id, ts=iso(ts))
    doc["principal"]["id"] = principal
    doc["source"]["device_id"] = f"lt-{principal}"
    doc.update(fields)
    return doc


def permission(event_id: str, ts: float, target: str = "u-4821", **fields: Any) -> dict[str, Any]:
    doc = copy.deepcopy(example("permission-event"))
    doc.update(event_id=event_id, ts=iso(ts))
    doc["target"]["id"] = target
    doc.update(fields)
    return doc


def routine_then_bulk(principal: str = "u-4821", days: int = 6, per_day: int = 40) -> list[dict[str, Any]]:
    """``days`` of small exports by one principal, then one export of 480,000 records (pages)."""
    docs = []
    for d in range(days):
        for i in range(per_day):
            ts = T0 + d * 86_400 + 9 * 3600 + i * 600
            docs.append(access(f"{principal}-{d}-{i}", ts, principal, action="export", records=10 + (i * 7) % 30))
    docs.append(access(f"{principal}-bulk", T0 + days * 86_400 + 10 * 3600, principal, action="export",
                       records=480_000, bytes=480_000 * 800))
    return docs


def lines(docs: list[dict[str, Any]]) -> list[bytes]:
    return [orjson.dumps(d) for d in docs]
