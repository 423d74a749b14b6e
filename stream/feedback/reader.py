"""Analyst feedback from the feedback topic: check each record, apply what is authentic to the policy.

The feedback topic is read whole by every instance (a global table, like Kafka Streams'
GlobalKTable): any instance may own the principal a verdict is about now or after the next
rebalance. Before processing starts, :meth:`FeedbackReader.catch_up` applies what is on the topic
(for at most ``catch_up_s``); after that, :meth:`FeedbackReader.poll` runs once per loop iteration
within a time budget (:class:`Budget`): whoever can write to the topic can fill it, but can slow
detection by no more than :data:`BUSY_SHARE` of the loop's time. A record is refused with a reason
(:mod:`stream.feedback.verify`), counted and logged at INFO without any identifier, the log lines
rate-limited per reason.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from detectors.feedback import FeedbackPolicy
from stream.feedback.verify import Accepted, Refused, VerdictChecker

log = logging.getLogger(__name__)

#: share of the loop's time feedback records may take while input keeps coming
BUSY_SHARE = 0.02
#: and while the input is idle (nothing else to do)
IDLE_SHARE = 0.5
#: one refusal log line per reason per this many seconds, with the count of those not logged
LOG_EVERY_S = 10.0


def apply(policy: FeedbackPolicy, accepted: Accepted) -> str | None:
    """Put an authenticated verdict in force, or revoke the one it names; return the verdict applied
    (``revoke`` for a revoke; None for a verdict already in force), or raise :class:`Refused`."""
    verdict = accepted.verdict
    if accepted.revokes is not None:
        policy.revoke(accepted.revokes, verdict.until)
        return "revoke"
    outcome = policy.apply(verdict)
    if outcome == "revoked":
        raise Refused("revoked")
    if outcome == "full":
        raise Refused("capacity")
    return None if outcome == "duplicate" else verdict.verdict


class Budget:
    """Time a reader may spend per call: a share of the time since its last call (whatever it did)."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter, floor_s: float = 0.0005,
                 cap_s: float = 0.25) -> None:
        self.clock = clock
        self.floor_s = floor_s
        self.cap_s = cap_s
        self.last = clock()

    def allowance(self, share: float) -> float:
        now = self.clock()
        allowed = min(self.cap_s, max(self.floor_s, share * (now - self.last)))
        self.last = now
        return allowed


class RefusalLog:
    """Counts refusals by reason and logs them at INFO, at most one line per reason per ``every_s``."""

    def __init__(self, count: Callable[[str], None], every_s: float = LOG_EVERY_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.count = count
        self.every_s = every_s
        self.clock = clock
        self.next_line: dict[str, float] = {}
        self.unlogged: dict[str, int] = {}

    def refused(self, reason: str, partition: int, offset: int) -> None:
        self.count(reason)
        now = self.clock()
        if now < self.next_line.get(reason, 0.0):
            self.unlogged[reason] = self.unlogged.get(reason, 0) + 1
            return
        self.next_line[reason] = now + self.every_s
        log.info("feedback refused reason=%s partition=%d offset=%d not_logged_since=%d", reason, partition, offset,
                 self.unlogged.pop(reason, 0))


class FeedbackReader:
    """Reads the whole feedback topic (no group) and applies authentic verdicts to a shared policy.

    ``on_verdict`` counts applied records by verdict (``revoke`` included), ``on_refused`` by reason;
    ``clock`` is the wall clock (expiry and pruning).
    """

    def __init__(self, consumer: Any, topic: str, policy: FeedbackPolicy, checker: VerdictChecker,
                 on_verdict: Callable[[str], None], on_refused: Callable[[str], None],
                 clock: Callable[[], float] = time.time, budget: Budget | None = None) -> None:
        self.consumer = consumer
        self.policy = policy
        self.checker = checker
        self.on_verdict = on_verdict
        self.refusals = RefusalLog(on_refused)
        self.clock = clock
        self.budget = budget or Budget()
        self.pending: deque[Any] = deque()
        self.handled = 0
        self._assign(topic)

    def _assign(self, topic: str) -> None:
        from kafka import TopicPartition

        partitions = [TopicPartition(topic, p) for p in sorted(self.consumer.partitions_for_topic(topic) or [])]
        if not partitions:
            log.warning("feedback topic missing; analyst feedback is off topic=%s", topic)
        elif not self.checker.configured:
            log.warning("analysts_file or alert_id_key not set: every analyst verdict will be refused")
        self.consumer.assign(partitions)
        if partitions:
            self.consumer.seek_to_beginning(*partitions)

    def catch_up(self, timeout_s: float = 30.0) -> int:
        """Apply what is already on the topic before processing starts (a global table's bootstrap),
        for at most ``timeout_s``; the rest is read by :meth:`poll` as the loop runs."""
        partitions = list(self.consumer.assignment())
        if not partitions:
            return 0
        ends = self.consumer.end_offsets(partitions)
        deadline = time.monotonic() + timeout_s
        before = self.handled
        while time.monotonic() < deadline and (self.pending or any(
                self.consumer.position(tp) < ends[tp] for tp in partitions)):
            self._handle(self._fetch(200), deadline)
        behind = self.pending or any(self.consumer.position(tp) < ends[tp] for tp in partitions)
        log.info("feedback caught up records=%d in_force=%d complete=%s", self.handled - before, len(self.policy),
                 not behind)
        return self.handled - before

    def poll(self, idle: bool = False) -> int:
        """Handle feedback records within this call's budget; return how many were handled."""
        allowance = self.budget.allowance(IDLE_SHARE if idle else BUSY_SHARE)
        before = self.handled
        self._handle(self._fetch(0), time.monotonic() + allowance)
        self.policy.prune(self.clock())
        return self.handled - before

    def _fetch(self, timeout_ms: int) -> deque[Any]:
        if not self.pending:
            for records in self.consumer.poll(timeout_ms=timeout_ms).values():
                self.pending.extend(records)
        return self.pending

    def _handle(self, pending: deque[Any], deadline: float) -> None:
        """Handle pending records until ``deadline`` (monotonic); at least one, so reading progresses."""
        while pending:
            self.handle(pending.popleft())
            if time.monotonic() >= deadline:
                break

    def handle(self, record: Any) -> None:
        """Check one record and apply it, or count why not."""
        self.handled += 1
        now = self.clock()
        received_at = record.timestamp / 1000.0 if record.timestamp and record.timestamp > 0 else now
        try:
            accepted = self.checker.check(record.value, received_at, now)
            applied = apply(self.policy, accepted)
        except Refused as refused:
            self.refusals.refused(refused.reason, record.partition, record.offset)
            return
        if applied is not None:
            self.on_verdict(applied)
            log.info("feedback applied verdict=%s scope=%s in_force=%d", applied, accepted.verdict.scope,
                     len(self.policy))

    def close(self) -> None:
        self.consumer.close()
