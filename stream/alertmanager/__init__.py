"""Alertmanager API v2 sink: pure mapping, backoff, bookkeeping, and the non-blocking sender."""

from stream.alertmanager.backoff import Backoff
from stream.alertmanager.client import AlertmanagerError, post_alerts
from stream.alertmanager.mapping import incident_key, severity_bucket, to_alertmanager
from stream.alertmanager.sink import AlertmanagerSink

__all__ = [
    "AlertmanagerError",
    "AlertmanagerSink",
    "Backoff",
    "incident_key",
    "post_alerts",
    "severity_bucket",
    "to_alertmanager",
]
