"""Alertmanager API v2 delivery: pure mapping, page bookkeeping, the client, and the delivery loop
over the alerts topic."""

from stream.alertmanager.client import AlertmanagerError, Connection, post_alerts
from stream.alertmanager.mapping import incident_key, severity_bucket, to_alertmanager

__all__ = [
    "AlertmanagerError",
    "Connection",
    "incident_key",
    "post_alerts",
    "severity_bucket",
    "to_alertmanager",
]
