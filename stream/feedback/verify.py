"""Checking one feedback record: a verdict counts only if every check passes.

The checks run cheapest first, so that a flood of forged records costs little each: size, JSON,
signature present, schema, analyst and key known, alert id emitted by this service (its MAC,
:func:`detectors.alerts.check_alert_id`), not about the analyst's own principal, times, and last
the Ed25519 signature (about a hundred times the cost of the rest). A refusal names one reason of
:data:`REASONS`, a low-cardinality metric label.

Times: ``received_at`` is when the record reached the topic (the broker's append time, as the
feedback topic is created with ``message.timestamp.type=LogAppendTime``); a verdict signed more than
``max_skew_s`` before it (backdated) or after it (future) is refused, and its effect starts at the
earlier of the two (clamped to now). ``now`` is the reader's clock: a verdict already expired is
refused, as is one lasting longer than :data:`~stream.feedback.signing.MAX_EXPIRY_DAYS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import orjson
from pydantic import ValidationError

from detectors.alerts import check_alert_id, parse_alert_id
from detectors.feedback import Verdict
from stream.contract.models import Feedback
from stream.feedback.analysts import Analysts
from stream.feedback.signing import MAX_EXPIRY_DAYS, verify

#: every reason a record is refused for (``privwatch_feedback_refused_total{reason}``)
REASONS = ("not_configured", "too_large", "malformed", "unsigned", "unknown_analyst", "unknown_key",
           "not_emitted", "own_alert", "future", "backdated", "expired", "bad_expiry", "bad_signature", "revoked",
           "capacity")
#: a verdict record is well under 4 KiB; anything much larger is not one
MAX_RECORD_BYTES = 16 << 10
#: default tolerance between the signing time and the append time (clocks and a slow network)
MAX_SKEW_S = 300.0


class Refused(Exception):
    """A feedback record that does not count; ``reason`` is one of :data:`REASONS`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Accepted:
    """What an authenticated record asks for: a verdict to put in force, or one to revoke."""

    verdict: Verdict
    revokes: str | None = None


class VerdictChecker:
    """Checks records against the configured analysts and the alert-id key.

    With no alert-id key or no analysts, every record is refused as ``not_configured``: without
    them nothing can be authenticated.
    """

    def __init__(self, analysts: Analysts, alert_key: bytes | None, max_skew_s: float = MAX_SKEW_S,
                 max_expiry_days: float = MAX_EXPIRY_DAYS) -> None:
        self.analysts = analysts
        self.alert_key = alert_key
        self.max_skew_s = max_skew_s
        self.max_expiry_s = min(max_expiry_days, MAX_EXPIRY_DAYS) * 86_400.0

    @property
    def configured(self) -> bool:
        return bool(self.alert_key) and len(self.analysts) > 0

    def check(self, raw: bytes | None, received_at: float, now: float) -> Accepted:
        """The verdict (or revoke) ``raw`` carries, or :class:`Refused`."""
        if not self.configured:
            raise Refused("not_configured")
        doc = self._document(raw)
        record = self._validated(doc)
        key = self._analyst_key(record)
        detector, principal, event_id = self._alert(record)
        if self.analysts.is_self(record.analyst, principal):
            raise Refused("own_alert")
        since, until = self._times(record, received_at, now)
        if not verify(doc, key):
            raise Refused("bad_signature")
        verdict = Verdict(record.verdict_id, record.verdict, record.scope, detector, principal, event_id, since,
                          until, record.analyst, record.resource_id or "")
        return Accepted(verdict, record.revokes)

    def _document(self, raw: bytes | None) -> dict:
        if raw is not None and len(raw) > MAX_RECORD_BYTES:
            raise Refused("too_large")
        try:
            doc = orjson.loads(raw or b"")
        except orjson.JSONDecodeError:
            raise Refused("malformed") from None
        if not isinstance(doc, dict):
            raise Refused("malformed")
        if not doc.get("signature"):
            raise Refused("unsigned")
        return doc

    def _validated(self, doc: dict) -> Feedback:
        try:
            return Feedback.model_validate(doc)
        except ValidationError:
            raise Refused("malformed") from None

    def _analyst_key(self, record: Feedback):  # type: ignore[no-untyped-def]
        if record.analyst not in self.analysts.by_name:
            raise Refused("unknown_analyst")
        key = self.analysts.key(record.analyst, record.key_id)
        if key is None:
            raise Refused("unknown_key")
        return key

    def _alert(self, record: Feedback) -> tuple[str, str, str]:
        assert self.alert_key is not None  # checked by configured
        try:
            detector, principal, event_id, _ = parse_alert_id(record.alert_id)
        except ValueError:
            raise Refused("not_emitted") from None
        if not check_alert_id(record.alert_id, self.alert_key):
            raise Refused("not_emitted")
        return detector, principal, event_id

    def _times(self, record: Feedback, received_at: float, now: float) -> tuple[float, float]:
        signed = datetime.fromisoformat(record.ts).timestamp()
        until = datetime.fromisoformat(record.expires).timestamp()
        if until <= signed or until - signed > self.max_expiry_s:
            raise Refused("bad_expiry")
        if until < now:
            raise Refused("expired")
        if signed > received_at + self.max_skew_s:
            raise Refused("future")
        if signed < received_at - self.max_skew_s:
            raise Refused("backdated")
        return min(signed, received_at), until
