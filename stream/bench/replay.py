"""Engine speed and detection identity on a recorded stream, for speed work: "faster, same alerts".

``python -m stream.bench.replay events.jsonl [--save ref.json | --check ref.json]`` decodes the file
once (not timed), replays it through a fresh :class:`~detectors.engine.Engine`, and prints µs per
event plus SHA-256 digests of the alerts and of every finding the engine judged (detector, event,
raw score, severity, reasons, baseline), which change far more often than alerts do. ``--save``
writes the digests; ``--check`` compares against saved ones and exits 1 on any difference.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from detectors.base import Finding, Profile
from detectors.engine import Engine
from stream.contract.decode import decode


class RecordingEngine(Engine):
    """An engine that notes every finding it judges, with the severity it gave it."""

    def __init__(self) -> None:
        super().__init__()
        self.judged: list[list[Any]] = []

    def _severity(self, finding: Finding, profile: Profile) -> float:
        severity = super()._severity(finding, profile)
        self.judged.append([finding.detector, finding.event.event_id, repr(finding.score), repr(severity),
                            finding.reasons, finding.baseline, finding.peer_shift])
        return severity


def _digest(docs: list[Any]) -> str:
    h = hashlib.sha256()
    for doc in docs:
        h.update(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS))
        h.update(b"\n")
    return h.hexdigest()


def replay(path: Path) -> dict[str, Any]:
    events = [decode(line, 4e9) for line in path.read_bytes().splitlines() if line.strip()]
    engine = RecordingEngine()
    alerts: list[dict[str, Any]] = []
    started = time.perf_counter()
    for event in events:
        alerts.extend(engine.process(event))
    took = time.perf_counter() - started
    return {"events": len(events), "us_per_event": round(1e6 * took / max(len(events), 1), 1),
            "alerts": len(alerts), "alerts_sha256": _digest(alerts),
            "findings": len(engine.judged), "findings_sha256": _digest(engine.judged)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m stream.bench.replay", description=__doc__.split("\n")[0])
    p.add_argument("events", type=Path, help="JSONL file of contract events (e.g. privwatch simulate output)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--save", type=Path, help="write the digests here")
    group.add_argument("--check", type=Path, help="compare the digests with these; exit 1 if they differ")
    args = p.parse_args(argv)
    result = replay(args.events)
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    if args.save:
        args.save.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    if args.check:
        want = orjson.loads(args.check.read_bytes())
        differ = [k for k in ("events", "alerts", "alerts_sha256", "findings", "findings_sha256")
                  if want.get(k) != result[k]]
        print("identical" if not differ else "DIFFERENT: " + ", ".join(differ), file=sys.stderr)
        return 1 if differ else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
