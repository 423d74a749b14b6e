"""Analyst feedback from the feedback topic: decode, join with the alert, apply to the policy.

The feedback topic is read whole by every instance (a global table, like Kafka Streams'
GlobalKTable): verdicts are few, and any instance may own the principal they are about now or after
the next rebalance. The alert a verdict names is identified by its deterministic ``alert_id``
(``detector:principal:event_id``); a verdict may carry an optional ``resource_id`` to scope an
allow-list to one resource.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from detectors.feedback import FeedbackPolicy, Verdict
from stream.contract.models import Feedback
from stream.errors import BadRecord

log = logging.getLogger(__name__)


def parse_alert_id(alert_id: str) -> tuple[str, str]:
    """(detector, principal) from a deterministic alert id.

    >>> parse_alert_id("volume:u-1:with:colons:e9")
    ('volume', 'u-1:with:colons')
    """
    detector, _, rest = alert_id.partition(":")
    principal, _, _event = rest.rpartition(":")
    if not detector or not principal:
        raise BadRecord("schema", "alert_id is not detector:principal:event_id")
    return detector, principal


def to_verdict(raw: bytes) -> Verdict:
    """Decode one feedback record into a :class:`Verdict` (BadRecord when it is not one)."""
    try:
        doc = Feedback.model_validate_json(raw)
    except ValidationError as exc:
        raise BadRecord("schema", f"feedback: {exc.error_count()} error(s)") from None
    detector, principal = parse_alert_id(doc.alert_id)
    return Verdict(
        verdict=doc.verdict,
        ts=doc.ts.timestamp(),
        detector=detector,
        principal_id=principal,
        resource_ids=(doc.resource_id,) if doc.resource_id else (),
    )


class FeedbackReader:
    """Reads the whole feedback topic (no group) and applies verdicts to a shared policy."""

    def __init__(self, consumer: Any, topic: str, policy: FeedbackPolicy, on_verdict: Callable[[str], None]) -> None:
        from kafka import TopicPartition

        self.consumer = consumer
        self.policy = policy
        self.on_verdict = on_verdict
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        if not partitions:
            log.warning("feedback topic missing; analyst feedback is off topic=%s", topic)
        consumer.assign(partitions)
        if partitions:
            consumer.seek_to_beginning(*partitions)

    def catch_up(self, timeout_s: float = 30.0) -> int:
        """Apply everything already on the topic before processing starts (a global table's bootstrap)."""
        partitions = list(self.consumer.assignment())
        if not partitions:
            return 0
        ends = self.consumer.end_offsets(partitions)
        deadline = time.monotonic() + timeout_s
        applied = 0
        while time.monotonic() < deadline and any(self.consumer.position(tp) < ends[tp] for tp in partitions):
            applied += self.poll(timeout_ms=200)
        log.info("feedback caught up verdicts=%d", applied)
        return applied

    def poll(self, timeout_ms: int = 0) -> int:
        """Apply whatever feedback arrived. Returns how many verdicts were applied."""
        applied = 0
        for records in self.consumer.poll(timeout_ms=timeout_ms).values():
            for record in records:
                try:
                    verdict = to_verdict(record.value or b"")
                except BadRecord as bad:
                    log.warning("feedback record refused reason=%s offset=%d", bad.reason, record.offset)
                    self.on_verdict("invalid")
                    continue
                self.policy.apply(verdict)
                self.on_verdict(verdict.verdict)
                applied += 1
        return applied

    def close(self) -> None:
        self.consumer.close()
