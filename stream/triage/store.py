"""What the triage app and ``privwatch alerts`` read and write: incidents grouped from alerts, the queue,
assignments, verdicts and the audit log.

Alerts are grouped as :mod:`stream.alertmanager.correlate` groups pages: a principal's alert joins its
latest incident that is not closed when it is at most ``window_s`` of event time after that
incident's latest alert (or before its first); otherwise it opens a new incident, whose id is the
hashed id of its first alert (:func:`~stream.alertmanager.mapping.incident_key`, so a paging incident
has the id Alertmanager shows). Adding an alert twice changes nothing: the alerts consumer may
re-deliver.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Engine, and_, exists, func, insert, select, update

from stream.alertmanager.correlate import LEVEL_RANK
from stream.alertmanager.mapping import event_time, incident_key
from stream.triage.schema import alerts, audit, incident_aliases, incidents, verdicts

STATUSES = ("open", "assigned", "closed")
LEVELS = tuple(LEVEL_RANK)


@dataclass(frozen=True)
class QueueFilter:
    """The queue's filters: levels at least ``level``, a detector, an age (hours), a principal."""

    status: str = "open"
    level: str = "medium"
    detector: str = ""
    max_age_h: float = 0.0  # 0: any age
    principal: str = ""

    def conditions(self, now: float) -> list[Any]:
        where = [incidents.c.level_rank >= LEVEL_RANK.get(self.level, 0)]
        if self.detector:
            where.append(exists().where(and_(alerts.c.incident_id == incidents.c.incident_id,
                                             alerts.c.detector == self.detector)))
        if self.max_age_h > 0:
            where.append(incidents.c.last_ts >= now - self.max_age_h * 3600.0)
        if self.principal:
            where.append(incidents.c.principal_id == self.principal)
        return where


class TriageStore:
    """The triage database behind one SQLAlchemy engine."""

    def __init__(self, engine: Engine, window_s: float = 3600.0) -> None:
        self.engine = engine
        self.window_s = window_s

    # -- alerts in -----------------------------------------------------------------------------------
    def add_alerts(self, docs: Iterable[dict[str, Any]]) -> int:
        """Group and store contract alerts in one transaction; return how many were new."""
        added = 0
        with self.engine.begin() as db:
            for doc in docs:
                added += self._add(db, doc)
        return added

    def _add(self, db: Any, doc: dict[str, Any]) -> int:
        alert_id = str(doc["alert_id"])
        if db.execute(select(alerts.c.alert_id).where(alerts.c.alert_id == alert_id)).first():
            return 0
        ts, principal = event_time(doc["ts"]), str(doc["principal_id"])
        incident = db.execute(
            select(incidents).where(incidents.c.principal_id == principal, incidents.c.status != "closed",
                                    incidents.c.last_ts >= ts - self.window_s,
                                    incidents.c.first_ts <= ts + self.window_s)
            .order_by(incidents.c.last_ts.desc()).limit(1)).mappings().first()
        level, severity = str(doc["level"]), float(doc["severity"])
        if incident is None:
            incident_id = incident_key(alert_id)
            db.execute(insert(incidents).values(
                incident_id=incident_id, principal_id=principal, first_ts=ts, last_ts=ts, severity=severity,
                level=level, level_rank=LEVEL_RANK.get(level, 0), title=str(doc["title"]),
                detectors=str(doc["detector"]), n_alerts=1, status="open"))
        else:
            incident_id = incident["incident_id"]
            detectors = list(dict.fromkeys([*incident["detectors"].split(","), str(doc["detector"])]))
            values: dict[str, Any] = {
                "first_ts": min(incident["first_ts"], ts), "last_ts": max(incident["last_ts"], ts),
                "n_alerts": incident["n_alerts"] + 1, "detectors": ",".join(detectors)[:512]}
            if severity > incident["severity"]:
                values.update(severity=severity, title=str(doc["title"]))
            if LEVEL_RANK.get(level, 0) > incident["level_rank"]:
                values.update(level=level, level_rank=LEVEL_RANK[level])
            db.execute(update(incidents).where(incidents.c.incident_id == incident_id).values(**values))
        db.execute(insert(alerts).values(alert_id=alert_id, incident_id=incident_id, ts=ts,
                                         detector=str(doc["detector"]), level=level, severity=severity,
                                         doc=orjson.dumps(doc).decode()))
        paged = doc.get("incident")
        alias = str(paged.get("incident_id") or "") if isinstance(paged, dict) else ""
        if alias and alias != incident_id and not db.execute(
                select(incident_aliases.c.alias).where(incident_aliases.c.alias == alias)).first():
            db.execute(insert(incident_aliases).values(alias=alias, incident_id=incident_id))
        return 1

    # -- reading -------------------------------------------------------------------------------------
    def queue(self, where: QueueFilter, now: float | None = None, limit: int = 200) -> list[dict[str, Any]]:
        """Incidents matching the filters, the most severe and most recent first."""
        now = time.time() if now is None else now
        query = (select(incidents).where(incidents.c.status == where.status, *where.conditions(now))
                 .order_by(incidents.c.level_rank.desc(), incidents.c.last_ts.desc()).limit(limit))
        with self.engine.connect() as db:
            return [dict(row) for row in db.execute(query).mappings()]

    def counts(self, where: QueueFilter, now: float | None = None) -> dict[str, int]:
        """Incidents per status under the other filters."""
        now = time.time() if now is None else now
        query = (select(incidents.c.status, func.count()).where(*where.conditions(now))
                 .group_by(incidents.c.status))
        with self.engine.connect() as db:
            found: dict[str, int] = {status: n for status, n in db.execute(query).all()}
        return {status: int(found.get(status, 0)) for status in STATUSES}

    def incident(self, incident_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as db:
            row = db.execute(select(incidents).where(incidents.c.incident_id == incident_id)).mappings().first()
        return None if row is None else dict(row)

    def aliased(self, alias: str) -> str | None:
        """The incident Alertmanager's id ``alias`` of a page names, when it is not the incident's own."""
        with self.engine.connect() as db:
            return db.execute(select(incident_aliases.c.incident_id)
                              .where(incident_aliases.c.alias == alias)).scalar()

    def incident_of(self, alert_id: str) -> str | None:
        """The incident an alert belongs to (None: not seen)."""
        with self.engine.connect() as db:
            return db.execute(select(alerts.c.incident_id).where(alerts.c.alert_id == alert_id)).scalar()

    def alerts_of(self, incident_id: str) -> list[dict[str, Any]]:
        """The incident's alerts (contract documents), oldest first."""
        with self.engine.connect() as db:
            rows = db.execute(select(alerts.c.doc).where(alerts.c.incident_id == incident_id)
                              .order_by(alerts.c.ts, alerts.c.alert_id)).scalars().all()
        return [orjson.loads(doc) for doc in rows]

    def alert(self, alert_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as db:
            doc = db.execute(select(alerts.c.doc).where(alerts.c.alert_id == alert_id)).scalar()
        return None if doc is None else orjson.loads(doc)

    def verdicts_of(self, incident_id: str) -> list[dict[str, Any]]:
        with self.engine.connect() as db:
            rows = db.execute(select(verdicts).where(verdicts.c.incident_id == incident_id)
                              .order_by(verdicts.c.ts)).mappings().all()
        return [dict(row) for row in rows]

    def verdict(self, verdict_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as db:
            row = db.execute(select(verdicts).where(verdicts.c.verdict_id == verdict_id)).mappings().first()
        return None if row is None else dict(row)

    def audit_of(self, incident_id: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
        query = select(audit).order_by(audit.c.at.desc(), audit.c.id.desc()).limit(limit)
        if incident_id is not None:
            query = query.where(audit.c.incident_id == incident_id)
        with self.engine.connect() as db:
            return [dict(row) for row in db.execute(query).mappings()]

    # -- actions (each one audited) ------------------------------------------------------------------
    def record(self, analyst: str, action: str, incident_id: str | None, detail: str = "", db: Any = None) -> None:
        """Write one audit entry (in ``db``'s transaction when given)."""
        row = {"at": time.time(), "analyst": analyst, "action": action, "incident_id": incident_id,
               "detail": detail}
        if db is not None:
            db.execute(insert(audit).values(**row))
            return
        with self.engine.begin() as own:
            own.execute(insert(audit).values(**row))

    def assign(self, incident_id: str, analyst: str, assignee: str | None) -> None:
        """Assign the incident to ``assignee`` (None: back to the open queue)."""
        status = "assigned" if assignee else "open"
        with self.engine.begin() as db:
            db.execute(update(incidents).where(incidents.c.incident_id == incident_id)
                       .values(assignee=assignee, status=status))
            self.record(analyst, "assign" if assignee else "unassign", incident_id, assignee or "", db)

    def set_status(self, incident_id: str, analyst: str, status: str) -> None:
        """Close an incident, or reopen it (assigned again if it has an assignee)."""
        with self.engine.begin() as db:
            if status == "closed":
                values: dict[str, Any] = {"status": "closed"}
            else:
                assignee = db.execute(select(incidents.c.assignee)
                                      .where(incidents.c.incident_id == incident_id)).scalar()
                values = {"status": "assigned" if assignee else "open"}
            db.execute(update(incidents).where(incidents.c.incident_id == incident_id).values(**values))
            self.record(analyst, "close" if status == "closed" else "reopen", incident_id, "", db)

    def add_verdict(self, record: dict[str, Any], incident_id: str) -> None:
        """Keep a published verdict (or revoke) and audit it; a revoke marks the verdict it revokes."""
        with self.engine.begin() as db:
            db.execute(insert(verdicts).values(
                verdict_id=record["verdict_id"], alert_id=record["alert_id"], incident_id=incident_id,
                analyst=record["analyst"], verdict=record["verdict"], scope=record["scope"],
                resource_id=record.get("resource_id"), ts=record["ts"], expires=record["expires"],
                note=record.get("note"), revokes=record.get("revokes"), record=orjson.dumps(record).decode()))
            if record.get("revokes"):
                db.execute(update(verdicts).where(verdicts.c.verdict_id == record["revokes"])
                           .values(revoked_by=record["verdict_id"]))
            detail = f"{record['verdict']} scope={record['scope']} verdict_id={record['verdict_id']}"
            self.record(record["analyst"], "verdict", incident_id, detail, db)

