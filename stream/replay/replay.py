"""``privwatch replay``: the same engine over a file of mixed events, for backtests and reviews.

Bad lines are counted and reported, never fatal. Output is deterministic: ``detected_at`` is the
event time of the triggering event (the engine's clock in replay), so two runs give identical files.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from detectors.engine import Engine, EngineConfig
from detectors.events import Event
from stream.contract.decode import decode, dumps
from stream.errors import BadRecord, InputError
from stream.progress import bar

if TYPE_CHECKING:
    from stream.feedback.replayed import ReplayFeedback

log = logging.getLogger(__name__)


@dataclass
class ReplayResult:
    alerts: list[dict[str, Any]] = field(default_factory=list)
    processed: int = 0
    rejected: int = 0
    n_alerts: int = 0
    #: events older than one already replayed (processed anyway: the engine's windows follow event
    #: time, but a backtest fed out of order does not see what the service would have seen)
    out_of_order: int = 0
    reasons: Counter = field(default_factory=Counter)

    @property
    def lines(self) -> int:
        return self.processed + self.rejected


def replay_lines(
    lines: Iterable[bytes],
    engine: Engine | None = None,
    on_alert: Callable[[dict[str, Any]], object] | None = None,
    feedback: ReplayFeedback | None = None,
    route: Callable[[Event], Engine] | None = None,
) -> ReplayResult:
    """Feed raw JSON lines through one engine; collect alerts (or hand each to ``on_alert``).

    ``feedback`` (signed analyst verdicts) take effect when event time reaches their signing time;
    its alert-id key is the engine's, so the alerts' ids are ones the verdicts can name.
    ``route`` picks the engine of each decoded event instead (a deployment's partitions, in input
    order: :mod:`stream.evaluate.shared`); not with ``engine`` or ``feedback``.
    """
    if route is not None and (engine is not None or feedback is not None):
        raise ValueError("replay_lines: route picks the engines; give neither engine nor feedback with it")
    engine = engine or Engine(EngineConfig())
    if feedback is not None:
        engine.feedback = feedback.policy
        engine.alert_key = feedback.alert_key
    result = ReplayResult()
    now = time.time()
    newest = float("-inf")
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        try:
            event = decode(line, now)
        except BadRecord as bad:
            result.rejected += 1
            result.reasons[bad.reason] += 1
            log.debug("rejected line=%d reason=%s detail=%s", number, bad.reason, bad.detail)
            continue
        result.processed += 1
        if event.ts < newest:
            result.out_of_order += 1
        else:
            newest = event.ts
        if feedback is not None:
            feedback.advance(event.ts)
        for alert in (engine if route is None else route(event)).process(event):
            result.n_alerts += 1
            if on_alert is None:
                result.alerts.append(alert)
            else:
                on_alert(alert)
    return result


def _open(path: str, mode: str, std: IO[bytes]) -> IO[bytes]:
    if path == "-":
        return std
    try:
        return open(path, mode)  # noqa: SIM115 - closed by the caller
    except OSError as exc:
        what = "read the input" if "r" in mode else "write the output"
        raise InputError(f"cannot {what} {path}: {exc.strerror}") from None


def replay_file(input_path: str, output_path: str, engine: Engine | None = None,
                write: Callable[[dict[str, Any]], bytes] | None = None) -> ReplayResult:
    """Replay ``input_path`` (``-``: stdin) into ``output_path`` (``-``: stdout), each alert written as
    ``write`` renders it (default: one JSON line). A progress bar on a terminal."""
    render = write or (lambda alert: dumps(alert) + b"\n")
    src = _open(input_path, "rb", sys.stdin.buffer)
    out = _open(output_path, "wb", sys.stdout.buffer)
    size = None if src is sys.stdin.buffer else os.fstat(src.fileno()).st_size
    try:
        with bar(size, "replay", unit="B", unit_scale=True) as shown:
            result = replay_lines(_counted(src, shown), engine, on_alert=lambda a: out.write(render(a)))
    finally:
        if src is not sys.stdin.buffer:
            src.close()
        if out is sys.stdout.buffer:
            out.flush()
        else:
            out.close()
    return result


def _counted(lines: Iterable[bytes], shown: Any) -> Iterator[bytes]:
    for line in lines:
        shown.update(len(line))
        yield line
