"""Signed feedback records in replay: applied when event time reaches the time they were signed.

Replay has no broker and no wall clock: a record counts as received when it was signed, and "now"
is the event time reached, so the same checks as the service's (:mod:`stream.feedback.verify`) apply.
"""

from __future__ import annotations

from collections import Counter, deque
from datetime import datetime

import orjson

from detectors.feedback import FeedbackPolicy
from stream.feedback.reader import apply
from stream.feedback.verify import Refused, VerdictChecker


def signed_at(raw: bytes) -> float:
    """A record's signing time (``ts``), or -inf when it has none (it is then refused at once)."""
    try:
        return datetime.fromisoformat(orjson.loads(raw)["ts"]).timestamp()
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return float("-inf")


class ReplayFeedback:
    """Feedback records for one replay, with the policy they build and counts of what happened."""

    def __init__(self, records: list[bytes], checker: VerdictChecker, policy: FeedbackPolicy | None = None) -> None:
        self.checker = checker
        self.policy = policy or FeedbackPolicy()
        self.pending = deque(sorted(((signed_at(raw), raw) for raw in records), key=lambda item: item[0]))
        self.applied: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()

    @property
    def alert_key(self) -> bytes:
        return self.checker.alert_key or b""

    def advance(self, now: float) -> None:
        """Check and apply every record signed by event time ``now``."""
        while self.pending and self.pending[0][0] <= now:
            received_at, raw = self.pending.popleft()
            try:
                applied = apply(self.policy, self.checker.check(raw, received_at, now))
            except Refused as refused:
                self.refused[refused.reason] += 1
                continue
            if applied is not None:
                self.applied[applied] += 1
        self.policy.prune(now)
