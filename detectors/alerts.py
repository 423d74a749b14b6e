"""Findings to contract alerts (``stream/contract/alert.schema.json``), and the alert id format.

An alert id is ``detector:principal:event_id:tag``. The three names are percent-encoded (``%`` as
``%25`` and ``:`` as ``%3A``), so the id splits back into exactly the names it was made of whatever
they contain; ``tag`` is a keyed MAC (HMAC-SHA256, first :data:`TAG_CHARS` hex digits) over the
encoded names. The id stays deterministic (the same detector, principal and event always give the
same id, so reprocessing re-emits it), and whoever holds the key can tell an id it emitted from a
made-up one without remembering any alert (:func:`check_alert_id`). The key lives outside the
engine's state: it is handed to each engine and never pickled into a snapshot.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any, Final

from detectors.base import Finding

MAX_EVIDENCE: Final = 100  # the contract's maxItems for evidence_event_ids
#: hex digits of the tag: 64 bits, guessed online at one try per record on the feedback topic
TAG_CHARS: Final = 16


def iso(ts: float) -> str:
    """RFC 3339 UTC with milliseconds, as the contract examples write it.

    >>> iso(0.5)
    '1970-01-01T00:00:00.500Z'
    """
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def quote_part(name: str) -> str:
    """One name of an alert id, with ``%`` and ``:`` percent-encoded (nothing else changes).

    >>> quote_part("db:prod/t%1")
    'db%3Aprod/t%251'
    """
    if "%" not in name and ":" not in name:
        return name
    return name.replace("%", "%25").replace(":", "%3A")


def unquote_part(part: str) -> str:
    """The inverse of :func:`quote_part`.

    >>> unquote_part("db%3Aprod/t%251")
    'db:prod/t%1'
    """
    if "%" not in part:
        return part
    return part.replace("%3A", ":").replace("%25", "%")


def alert_tag(key: bytes, body: str) -> str:
    """The MAC of an alert id's encoded names (``detector:principal:event_id``)."""
    return hmac.new(key, body.encode("utf-8"), hashlib.sha256).hexdigest()[:TAG_CHARS]


def alert_id(detector: str, principal_id: str, event_id: str, key: bytes = b"") -> str:
    """Deterministic: the same triggering event always yields the same id.

    >>> alert_id("volume", "u-1", "e9", b"k" * 32)
    'volume:u-1:e9:98a4798fe6cf59ed'
    >>> alert_id("volume", "db:u-1", "e9", b"k" * 32).split(":")[1]
    'db%3Au-1'
    """
    body = f"{quote_part(detector)}:{quote_part(principal_id)}:{quote_part(event_id)}"
    return f"{body}:{alert_tag(key, body)}"


def parse_alert_id(value: str) -> tuple[str, str, str, str]:
    """``(detector, principal_id, event_id, tag)`` of an alert id; ValueError when it is not one.

    >>> parse_alert_id("volume:db%3Au-1:e9:82692934304c6862")
    ('volume', 'db:u-1', 'e9', '82692934304c6862')
    """
    parts = value.split(":")
    if len(parts) != 4 or not all(parts) or len(parts[3]) != TAG_CHARS:
        raise ValueError("alert_id is not detector:principal:event_id:tag")
    return unquote_part(parts[0]), unquote_part(parts[1]), unquote_part(parts[2]), parts[3]


def check_alert_id(value: str, key: bytes) -> bool:
    """True when ``value`` is an alert id made with ``key`` (in constant time)."""
    body, _, tag = value.rpartition(":")
    return bool(body) and hmac.compare_digest(alert_tag(key, body), tag)


def build_alert(
    finding: Finding, severity: float, level: str, detected_at: float, model_version: str, key: bytes = b"",
    suppressed_by: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The contract alert of ``finding``; ``key`` makes its id's tag, ``suppressed_by`` names the analyst
    verdict that turned it into an ``info`` alert (see :mod:`detectors.feedback`)."""
    event = finding.event
    evidence = list(dict.fromkeys([*finding.evidence_event_ids, event.event_id]))[-MAX_EVIDENCE:]
    alert = {
        "type": "alert",
        "alert_id": alert_id(finding.detector, event.principal_id, event.event_id, key),
        "ts": iso(event.ts),
        "detected_at": iso(detected_at),
        "detector": finding.detector,
        "principal_id": event.principal_id,
        "related_principal_ids": finding.related_principal_ids,
        "resource_ids": finding.resource_ids or ([event.resource_id] if event.resource_id else []),
        "severity": round(severity, 1),
        "level": level,
        "score": round(finding.score, 4),
        "title": finding.title,
        "reasons": finding.reasons,
        "baseline": finding.baseline,
        "evidence_event_ids": evidence,
        "model_version": model_version,
    }
    if suppressed_by is not None:
        alert["suppressed_by"] = suppressed_by
    return alert
