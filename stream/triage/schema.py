"""The triage database's tables (SQLAlchemy Core): incidents, their alerts, verdicts, and the audit log.

Any database SQLAlchemy speaks will do (``triage_database_url``); the default is a SQLite file. The
queue's queries are served by the indexes declared here: incidents by status and recency, by
principal (grouping new alerts), alerts by incident and by detector.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Column,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
)

metadata = MetaData()

incidents = Table(
    "incidents", metadata,
    Column("incident_id", String(32), primary_key=True),
    Column("principal_id", String(256), nullable=False),
    Column("first_ts", Float, nullable=False),
    Column("last_ts", Float, nullable=False),
    Column("severity", Float, nullable=False),
    Column("level", String(16), nullable=False),
    Column("level_rank", Integer, nullable=False),
    Column("title", String(512), nullable=False),
    Column("detectors", String(512), nullable=False),
    Column("n_alerts", Integer, nullable=False),
    Column("status", String(16), nullable=False, default="open"),  # open, assigned, closed
    Column("assignee", String(128)),
    Index("ix_incidents_status_last", "status", "last_ts"),
    Index("ix_incidents_principal_last", "principal_id", "last_ts"),
)

alerts = Table(
    "alerts", metadata,
    Column("alert_id", String(2048), primary_key=True),
    Column("incident_id", String(32), ForeignKey("incidents.incident_id"), nullable=False),
    Column("ts", Float, nullable=False),
    Column("detector", String(64), nullable=False),
    Column("level", String(16), nullable=False),
    Column("severity", Float, nullable=False),
    Column("doc", Text, nullable=False),  # the contract alert as received (JSON)
    Index("ix_alerts_incident_ts", "incident_id", "ts"),
    Index("ix_alerts_detector", "detector", "incident_id"),
)

#: the id Alertmanager shows for a paging incident (the service's, counted from its first page) when
#: the triage incident it joined opened earlier, with a non-paging alert: links name either
incident_aliases = Table(
    "incident_aliases", metadata,
    Column("alias", String(32), primary_key=True),
    Column("incident_id", String(32), ForeignKey("incidents.incident_id"), nullable=False),
)

verdicts = Table(
    "verdicts", metadata,
    Column("verdict_id", String(64), primary_key=True),
    Column("alert_id", String(2048), nullable=False),
    Column("incident_id", String(32), nullable=False),
    Column("analyst", String(128), nullable=False),
    Column("verdict", String(32), nullable=False),
    Column("scope", String(16), nullable=False),
    Column("resource_id", String(512)),
    Column("ts", String(40), nullable=False),
    Column("expires", String(40), nullable=False),
    Column("note", Text),
    Column("revokes", String(64)),
    Column("revoked_by", String(64)),
    Column("record", Text, nullable=False),  # the signed record as published
    Index("ix_verdicts_incident", "incident_id"),
)

audit = Table(
    "audit", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("analyst", String(128), nullable=False),
    Column("action", String(32), nullable=False),
    Column("incident_id", String(32)),
    Column("detail", Text, nullable=False, default=""),
    Index("ix_audit_incident_at", "incident_id", "at"),
)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL: the web threads read while the alerts consumer writes; a writer waits instead of failing
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def connect(url: str) -> Engine:
    """An engine for ``url`` with the tables created if missing."""
    sqlite = url.startswith("sqlite")
    engine = create_engine(url, connect_args={"check_same_thread": False} if sqlite else {})
    if sqlite:
        event.listen(engine, "connect", _sqlite_pragmas)
    metadata.create_all(engine)
    return engine
