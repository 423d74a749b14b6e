"""``privwatch replay``: the same engine over a file of mixed events, for backtests and reviews.

Bad lines are counted and reported, never fatal. Output is deterministic: ``detected_at`` is the
event time of the triggering event (the engine's clock in replay), so two runs give identical files.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from detectors.engine import Engine, EngineConfig
from detectors.feedback import FeedbackPolicy, Verdict
from stream.contract.decode import decode, dumps
from stream.errors import BadRecord

log = logging.getLogger(__name__)

PROGRESS_EVERY = 100_000


@dataclass
class ReplayResult:
    alerts: list[dict[str, Any]] = field(default_factory=list)
    processed: int = 0
    rejected: int = 0
    n_alerts: int = 0
    reasons: Counter = field(default_factory=Counter)

    @property
    def lines(self) -> int:
        return self.processed + self.rejected


def replay_lines(
    lines: Iterable[bytes],
    engine: Engine | None = None,
    on_alert: Callable[[dict[str, Any]], object] | None = None,
    progress: Callable[[ReplayResult], None] | None = None,
    verdicts: Sequence[Verdict] = (),
) -> ReplayResult:
    """Feed raw JSON lines through one engine; collect alerts (or hand each to ``on_alert``).

    ``verdicts`` (analyst feedback, sorted by ``ts``) take effect when event time reaches them.
    """
    engine = engine or Engine(EngineConfig())
    if verdicts and engine.feedback is None:
        engine.feedback = FeedbackPolicy()
    pending = deque(verdicts)
    result = ReplayResult()
    now = time.time()
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
        while pending and pending[0].ts <= event.ts:
            engine.feedback.apply(pending.popleft())  # type: ignore[union-attr]
        for alert in engine.process(event):
            result.n_alerts += 1
            if on_alert is None:
                result.alerts.append(alert)
            else:
                on_alert(alert)
        if progress is not None and number % PROGRESS_EVERY == 0:
            progress(result)
    return result


def _open_in(path: str) -> IO[bytes]:
    return sys.stdin.buffer if path == "-" else open(path, "rb")


def _open_out(path: str) -> IO[bytes]:
    return sys.stdout.buffer if path == "-" else open(path, "wb")


def replay_file(input_path: str, output_path: str, engine: Engine | None = None) -> ReplayResult:
    """Replay ``input_path`` (``-``: stdin) into ``output_path`` (``-``: stdout) as alert JSONL."""
    started = time.perf_counter()

    def progress(r: ReplayResult) -> None:
        rate = r.lines / max(time.perf_counter() - started, 1e-9)
        print(f"replay: {r.lines:,} lines, {r.rejected:,} rejected, {rate:,.0f} lines/s", file=sys.stderr)

    src, out = _open_in(input_path), _open_out(output_path)
    try:
        result = replay_lines(src, engine, on_alert=lambda a: out.write(dumps(a) + b"\n"), progress=progress)
    finally:
        if src is not sys.stdin.buffer:
            src.close()
        if out is sys.stdout.buffer:
            out.flush()
        else:
            out.close()
    return result
