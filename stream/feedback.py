"""Analyst feedback from the feedback topic: decode, join with the alert, apply to the policy.

The feedback topic is read whole by every instance (a global table, like Kafka Streams'
GlobalKTable): verdicts are few, and any instance may own the principal they are about now or after
the next rebalance. The alert a verdict names is identified by its deterministic ``alert_id``
(``detector:principal:event_id``); a verdict may carry an optional ``resource_id`` to scope an
allow-list to one resource.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from detectors.feedback import FeedbackPolicy, Verdict
from stream.errors import BadRecord
from stream.schemas import Feedback

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


def to_verdict(raw: bytes, peer_group_of: Callable[[str], str | None] = lambda _: None) -> Verdict:
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
        peer_group=peer_group_of(principal) or "-/-",
        resource_ids=(doc.resource_id,) if doc.resource_id else (),
    )


class FeedbackReader:
    """Reads the whole feedback topic (no group) and applies verdicts to a shared policy."""

    def __init__(self, consumer: Any, topic: str, policy: FeedbackPolicy,
                 peer_group_of: Callable[[str], str | None], on_verdict: Callable[[str], None]) -> None:
        from kafka import TopicPartition

        self.consumer = consumer
        self.policy = policy
        self.peer_group_of = peer_group_of
        self.on_verdict = on_verdict
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        if not partitions:
            log.warning("feedback topic missing; analyst feedback is off topic=%s", topic)
        consumer.assign(partitions)
        if partitions:
            consumer.seek_to_beginning(*partitions)

    def poll(self) -> int:
        """Apply whatever feedback arrived (non-blocking). Returns how many verdicts were applied."""
        applied = 0
        for records in self.consumer.poll(timeout_ms=0).values():
            for record in records:
                try:
                    verdict = to_verdict(record.value or b"", self.peer_group_of)
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
