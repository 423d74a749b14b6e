"""Pure mapping from a privwatch alert (or correlated incident) to an Alertmanager API v2 alert.

Labels identify an alert in Alertmanager (their hash is its fingerprint) and are indexed, routed on
and often copied into chat channels and ticket titles, so they stay low-cardinality and carry no
principal, resource or subject identifier (docs/operations.md). Everything a responder needs to
act goes into annotations instead.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any
from urllib.parse import quote

from detectors.alerts import iso
from detectors.calibrate import PAGING_LEVELS

ALERTNAME = "PrivacyIncident"
INCIDENT_RUNBOOK = "incident"  # docs/runbooks/incident.md, for incidents that span several detectors


def incident_key(alert_id: str) -> str:
    """A short, stable id for an alert id; the alert id itself contains the principal id.

    >>> incident_key("volume:u-1:e9")
    '258e3c21a6291505'
    """
    return hashlib.sha256(alert_id.encode("utf-8")).hexdigest()[:16]


def key_of(doc: dict[str, Any]) -> str:
    """The incident id of a correlated incident, or the hashed alert id of a single alert."""
    return str(doc.get("incident_id") or incident_key(str(doc["alert_id"])))


def severity_bucket(level: str) -> str:
    """``page`` for levels that wake someone (medium and above), else ``ticket``.

    >>> severity_bucket("high"), severity_bucket("low")
    ('page', 'ticket')
    """
    return "page" if level in PAGING_LEVELS else "ticket"


def event_time(value: str | float | int) -> float:
    """Epoch seconds of a contract timestamp (RFC 3339) or of a number passed through.

    >>> event_time("1970-01-01T00:00:01.500Z")
    1.5
    """
    if isinstance(value, int | float):
        return float(value)
    return datetime.fromisoformat(value).timestamp()


def check_evidence_url(template: str | None) -> None:
    """Raise ValueError at start-up when the evidence URL template has unknown placeholders."""
    if template:
        try:
            template.format(alert_id="a", incident_id="i")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"evidence_url may use only {{alert_id}} and {{incident_id}}: {exc}") from None


def labels_for(doc: dict[str, Any], service: str) -> dict[str, str]:
    """The identifying, routable labels: never a principal, resource or subject id."""
    level = str(doc["level"])
    return {
        "alertname": ALERTNAME,
        "detector": str(doc["detector"]),
        "level": level,
        "severity": severity_bucket(level),
        "service": service,
        "incident_id": key_of(doc),
    }


#: annotations kept with ``alertmanager_detail = "summary"``: no reasons (they spell out countries,
#: networks, devices and user agents), no principal, no evidence or alert ids; the evidence link has them
SUMMARY_ANNOTATIONS = ("summary", "severity", "detectors", "runbook_url", "evidence_url", "updates")


def _annotations(doc: dict[str, Any], runbook_url: str, evidence_link: str | None,
                 detail: str = "full") -> dict[str, str]:
    reasons = [str(r) for r in doc.get("reasons", [])]
    detectors = doc.get("detectors") or [doc["detector"]]
    notes = {
        "summary": str(doc["title"]),
        "description": "\n".join(f"- {r}" for r in reasons),
        "reasons": json.dumps(reasons, ensure_ascii=False),
        # The principal id belongs in an annotation, not a label: annotations are not indexed or
        # part of the fingerprint, and responders need to know whose behaviour to look at.
        "principal": str(doc["principal_id"]),
        "severity": f"{float(doc['severity']):.1f}",
        "detectors": ",".join(str(d) for d in detectors),
        "runbook_url": runbook_url,
        "evidence": ",".join(str(e) for e in doc.get("evidence_event_ids", [])),
        "alert_id": str(doc.get("alert_id") or doc.get("alert_ids", [""])[-1]),
    }
    if "updates" in doc:  # a correlated incident: feedback is given per alert id
        notes["updates"] = str(doc["updates"])
        notes["alert_ids"] = ",".join(str(a) for a in doc.get("alert_ids", []))
    if evidence_link:
        notes["evidence_url"] = evidence_link
    if detail == "summary":
        return {k: v for k, v in notes.items() if k in SUMMARY_ANNOTATIONS}
    return notes


def to_alertmanager(
    doc: dict[str, Any],
    *,
    service: str = "privwatch",
    runbook_base_url: str = "",
    evidence_url: str | None = None,
    ends_at: float | None = None,
    detail: str = "full",
) -> dict[str, Any]:
    """One postable Alertmanager v2 alert for a contract alert or a correlated incident.

    ``evidence_url`` is a template with ``{alert_id}`` and/or ``{incident_id}`` placeholders
    (URL-quoted on substitution). ``ends_at`` (epoch seconds) is omitted when None. ``detail``
    "summary" keeps only :data:`SUMMARY_ANNOTATIONS`.

    >>> am = to_alertmanager({"alert_id": "volume:u-1:e9", "ts": "2026-01-01T00:00:00Z",
    ...     "detector": "volume", "principal_id": "u-1", "severity": 91.5, "level": "critical",
    ...     "title": "Bulk export", "reasons": ["48,000 rows"], "evidence_event_ids": ["e9"]},
    ...     runbook_base_url="https://rb", ends_at=1767225660.0)
    >>> am["labels"]["severity"], am["labels"]["incident_id"], am["annotations"]["principal"]
    ('page', '258e3c21a6291505', 'u-1')
    >>> am["startsAt"], am["endsAt"], am["generatorURL"]
    ('2026-01-01T00:00:00.000Z', '2026-01-01T00:01:00.000Z', 'https://rb/volume.md')
    """
    detectors = doc.get("detectors") or [doc["detector"]]
    runbook = INCIDENT_RUNBOOK if len(detectors) > 1 else str(doc["detector"])
    runbook_url = f"{runbook_base_url.rstrip('/')}/{runbook}.md"
    evidence_link = None
    if evidence_url:
        alert_id = str(doc.get("alert_id") or doc.get("alert_ids", [""])[0])
        evidence_link = evidence_url.format(
            alert_id=quote(alert_id, safe=""), incident_id=quote(key_of(doc), safe="")
        )
    starts_at = event_time(doc["ts"])
    if ends_at is not None:
        # Event time can run ahead of this host's clock (max_clock_skew_s), and Alertmanager rejects an
        # alert whose startsAt is after its endsAt.
        starts_at = min(starts_at, ends_at)
    out: dict[str, Any] = {
        "labels": labels_for(doc, service),
        "annotations": _annotations(doc, runbook_url, evidence_link, detail),
        "startsAt": iso(starts_at),
        "generatorURL": evidence_link or runbook_url,
    }
    if ends_at is not None:
        out["endsAt"] = iso(ends_at)
    return out
