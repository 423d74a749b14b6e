"""Correlation: alerts on one principal close together in event time become one incident.

A grant, then a bulk read, then a login from a new country are three alerts but one story; on-call
should get one page that is updated as evidence arrives. The incident keeps the id of its first
alert (hashed), so the Alertmanager labels stay the same and Alertmanager keeps it as one alert.

Pure and deterministic: no I/O, no wall clock; memory is bounded by expiring incidents by event time
and by a cap on open incidents. Each incident remembers the input partition of its principal, so the
open incidents of a partition are snapshotted with its detector state (:meth:`Correlator.export`,
:meth:`Correlator.restore`) and move with it: after a restart or a rebalance, an alert on an open
incident updates it instead of opening (and paging) a new one.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from detectors.alerts import MAX_EVIDENCE, iso
from stream.alertmanager.mapping import event_time, incident_key

LEVEL_RANK = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}
MAX_REASONS = 50  # a page with more reasons than this is not read anyway
MAX_ALERT_IDS = 100  # also bounds duplicate detection for very long incidents
MAX_IDS = 100  # resource and related-principal ids kept per incident


def _union(old: list[str], new: list[str], cap: int) -> list[str]:
    """Ordered union without duplicates, keeping the most recent ``cap`` items."""
    return list(dict.fromkeys([*old, *new]))[-cap:]


@dataclass(slots=True)
class _Incident:
    incident_id: str
    principal_id: str
    detector: str
    first_ts: float
    last_ts: float
    severity: float
    level: str
    title: str
    detectors: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)
    alert_ids: list[str] = field(default_factory=list)
    resource_ids: list[str] = field(default_factory=list)
    related: list[str] = field(default_factory=list)
    updates: int = 0
    partition: int = -1  # the input partition of the principal's events (-1: not known)

    def merge(self, alert: dict[str, Any], ts: float) -> None:
        self.first_ts = min(self.first_ts, ts)
        self.last_ts = max(self.last_ts, ts)
        severity = float(alert["severity"])
        if severity > self.severity:
            self.severity = severity
            self.title = str(alert["title"])
        if LEVEL_RANK.get(str(alert["level"]), 0) > LEVEL_RANK.get(self.level, 0):
            self.level = str(alert["level"])
        self.detectors = _union(self.detectors, [str(alert["detector"])], MAX_IDS)
        self.reasons = list(dict.fromkeys([*self.reasons, *map(str, alert["reasons"])]))[:MAX_REASONS]
        self.evidence = _union(self.evidence, list(map(str, alert["evidence_event_ids"])), MAX_EVIDENCE)
        self.alert_ids = _union(self.alert_ids, [str(alert["alert_id"])], MAX_ALERT_IDS)
        self.resource_ids = _union(self.resource_ids, list(alert.get("resource_ids") or []), MAX_IDS)
        self.related = _union(self.related, list(alert.get("related_principal_ids") or []), MAX_IDS)
        self.updates += 1

    def as_dict(self) -> dict[str, Any]:
        extra = f" (+{self.updates - 1} related alerts)" if self.updates > 1 else ""
        return {
            "type": "incident",
            "incident_id": self.incident_id,
            "principal_id": self.principal_id,
            "detector": self.detector,
            "detectors": list(self.detectors),
            "ts": iso(self.first_ts),
            "first_ts": iso(self.first_ts),
            "last_ts": iso(self.last_ts),
            "severity": self.severity,
            "level": self.level,
            "title": self.title + extra,
            "reasons": list(self.reasons),
            "evidence_event_ids": list(self.evidence),
            "alert_ids": list(self.alert_ids),
            "resource_ids": list(self.resource_ids),
            "related_principal_ids": list(self.related),
            "updates": self.updates,
        }


def incident_summary(incident: dict[str, Any]) -> dict[str, Any]:
    """What an alert carries of the incident it joined (its ``incident`` field): what a page shows
    (the principal is the alert's own)."""
    return {k: v for k, v in incident.items() if k not in ("type", "principal_id")}


class Correlator:
    """Merge a principal's alerts into one incident while they keep coming within ``window_s``.

    The window is a session window on event time: an alert joins the principal's open incident when
    it is at most ``window_s`` after its latest alert (or before its first). ``detector`` is the
    detector that opened the incident and never changes, since it is an Alertmanager label.

    >>> c = Correlator(window_s=3600)
    >>> base = {"principal_id": "u-1", "severity": 60.0, "level": "medium", "title": "t",
    ...         "evidence_event_ids": ["e1"]}
    >>> a = c.add({**base, "alert_id": "privilege:u-1:e1", "ts": "2026-01-01T00:00:00Z",
    ...            "detector": "privilege", "reasons": ["self-grant"]})
    >>> b = c.add({**base, "alert_id": "volume:u-1:e2", "ts": "2026-01-01T00:10:00Z", "detector": "volume",
    ...            "reasons": ["bulk read"], "severity": 90.0, "level": "critical"})
    >>> a["incident_id"] == b["incident_id"], b["detectors"], b["level"], b["updates"]
    (True, ['privilege', 'volume'], 'critical', 2)
    """

    def __init__(self, window_s: float = 3600.0, max_incidents: int = 100_000) -> None:
        if window_s <= 0 or max_incidents < 1:
            raise ValueError("window_s and max_incidents must be positive")
        self.window_s = window_s
        self.max_incidents = max_incidents
        self._open: OrderedDict[str, _Incident] = OrderedDict()  # by principal, least recently updated first
        #: newest alert time per input partition: one partition's clock never expires another's incidents
        self._watermarks: dict[int, float] = {}

    def add(self, alert: dict[str, Any], partition: int = -1) -> dict[str, Any]:
        """Merge one contract alert, raised on input ``partition``; return its incident (a fresh dict
        the caller may keep)."""
        ts = event_time(alert["ts"])
        principal = str(alert["principal_id"])
        self._watermarks[partition] = max(self._watermarks.get(partition, ts), ts)
        self.expire()
        incident = self._open.get(principal)
        if incident is None or not self._within(incident, ts):
            incident = self._open_incident(alert, ts)
        incident.partition = partition
        if str(alert["alert_id"]) not in incident.alert_ids:  # re-processing re-emits the same alert
            incident.merge(alert, ts)
        self._open.move_to_end(principal)
        while len(self._open) > self.max_incidents:
            self._open.popitem(last=False)
        return incident.as_dict()

    def expire(self, watermark: float | None = None) -> int:
        """Forget incidents with no alert for ``window_s`` of their partition's event time (or before
        ``watermark``), least recently updated first."""
        n = 0
        while self._open:
            principal, oldest = next(iter(self._open.items()))
            mark = self._watermarks.get(oldest.partition, float("-inf")) if watermark is None else watermark
            if oldest.last_ts + self.window_s >= mark:
                break
            del self._open[principal]
            n += 1
        return n

    def export(self, partition: int) -> list[_Incident]:
        """The open incidents of ``partition``'s principals, for its snapshot (which pickles them at
        once, so they are not copied here)."""
        return [i for i in self._open.values() if i.partition == partition]

    def restore(self, partition: int, incidents: list[_Incident]) -> None:
        """Take back ``partition``'s open incidents from its snapshot (replacing any held for it)."""
        self.drop({partition})
        if incidents:
            self._watermarks[partition] = max(incident.last_ts for incident in incidents)
        for incident in incidents:
            incident.partition = partition
            current = self._open.get(incident.principal_id)
            if current is None or current.last_ts < incident.last_ts:
                self._open[incident.principal_id] = incident
        # least recently updated first again, as expire() expects
        self._open = OrderedDict(sorted(self._open.items(), key=lambda item: item[1].last_ts))
        while len(self._open) > self.max_incidents:
            self._open.popitem(last=False)

    def drop(self, partitions: set[int]) -> None:
        """Forget the open incidents of revoked partitions (their new owner restores them)."""
        for p in partitions:
            self._watermarks.pop(p, None)
        for principal in [p for p, i in self._open.items() if i.partition in partitions]:
            del self._open[principal]

    def _within(self, incident: _Incident, ts: float) -> bool:
        return incident.first_ts - self.window_s <= ts <= incident.last_ts + self.window_s

    def __len__(self) -> int:
        return len(self._open)

    def _open_incident(self, alert: dict[str, Any], ts: float) -> _Incident:
        incident = _Incident(
            incident_id=incident_key(str(alert["alert_id"])), principal_id=str(alert["principal_id"]),
            detector=str(alert["detector"]), first_ts=ts, last_ts=ts, severity=float(alert["severity"]),
            level=str(alert["level"]), title=str(alert["title"]),
        )
        self._open[incident.principal_id] = incident
        return incident
