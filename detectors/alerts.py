"""Findings to contract alerts (``stream/contract/alert.schema.json``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from detectors.base import Finding

MAX_EVIDENCE: Final = 100  # the contract's maxItems for evidence_event_ids


def iso(ts: float) -> str:
    """RFC 3339 UTC with milliseconds, as the contract examples write it.

    >>> iso(0.5)
    '1970-01-01T00:00:00.500Z'
    """
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def alert_id(detector: str, principal_id: str, event_id: str) -> str:
    """Deterministic: the same triggering event always yields the same id.

    >>> alert_id("volume", "u-1", "e9")
    'volume:u-1:e9'
    """
    return f"{detector}:{principal_id}:{event_id}"


def build_alert(
    finding: Finding, severity: float, level: str, detected_at: float, model_version: str
) -> dict[str, Any]:
    event = finding.event
    evidence = list(dict.fromkeys([*finding.evidence_event_ids, event.event_id]))[-MAX_EVIDENCE:]
    return {
        "type": "alert",
        "alert_id": alert_id(finding.detector, event.principal_id, event.event_id),
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
