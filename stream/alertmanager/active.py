"""The sink's bookkeeping, with no threads or I/O: which alerts are active, and what still has to be
posted (new alerts, updates, re-sends and resolves), keyed by Alertmanager fingerprint (the labels).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from stream.alertmanager.mapping import event_time, incident_key, key_of, labels_for

Fingerprint = tuple[tuple[str, str], ...]


@dataclass(slots=True)
class Active:
    doc: dict[str, Any]
    labels: dict[str, str]
    last_ts: float  # event time of the latest update


@dataclass(slots=True)
class Pending:
    doc: dict[str, Any]
    resolved_at: float | None  # wall-clock resolve time; None while the alert is active


def fingerprint(labels: dict[str, str]) -> Fingerprint:
    return tuple(sorted(labels.items()))


class ActiveAlerts:
    """Active alerts by incident key (oldest update first) and the posts still owed to Alertmanager.

    Both maps are bounded; ``on_drop(n)`` is called for every unsent post that a bound pushes out.
    """

    def __init__(self, service: str, active_for_s: float, max_active: int, max_pending: int,
                 on_drop: Callable[[int], None] = lambda n: None) -> None:
        self.service = service
        self.active_for_s = active_for_s
        self.max_active = max_active
        self.max_pending = max_pending
        self.on_drop = on_drop
        self.active: OrderedDict[str, Active] = OrderedDict()
        self.pending: dict[Fingerprint, Pending] = {}

    def apply(self, doc: dict[str, Any], now: float) -> float:
        """Take a new or updated alert; return its event time."""
        key = key_of(doc)
        labels = labels_for(doc, self.service)
        last_ts = event_time(doc.get("last_ts") or doc["ts"])
        previous = self.active.pop(key, None)
        if previous is not None and previous.labels != labels:
            # An escalation (new level) changes the fingerprint: end the old alert, start the new one.
            self._owe(previous.doc, previous.labels, now)
        self.active[key] = Active(doc, labels, last_ts)
        self._owe(doc, labels, None)
        while len(self.active) > self.max_active:
            _, evicted = self.active.popitem(last=False)
            if self.pending.pop(fingerprint(evicted.labels), None) is not None:
                self.on_drop(1)
        return last_ts

    def resolve(self, alert_id: str, now: float) -> bool:
        """Resolve by incident id or alert id; False if it is not active."""
        key = alert_id if alert_id in self.active else incident_key(alert_id)
        active = self.active.pop(key, None)
        if active is None:
            return False
        self._owe(active.doc, active.labels, now)
        return True

    def expire(self, watermark: float, now: float) -> int:
        """Resolve alerts not updated for ``active_for_s`` of event time; return how many."""
        n = 0
        # Ordered by update, so the stale ones are at the front (event time is near-monotonic).
        while self.active:
            key, oldest = next(iter(self.active.items()))
            if oldest.last_ts + self.active_for_s > watermark:
                break
            del self.active[key]
            self._owe(oldest.doc, oldest.labels, now)
            n += 1
        return n

    def resend_all(self) -> None:
        for active in self.active.values():
            self._owe(active.doc, active.labels, None)

    def delivered(self, sent: list[tuple[Fingerprint, Pending]]) -> None:
        """Forget posts that went out (unless superseded meanwhile)."""
        for fp, item in sent:
            if self.pending.get(fp) is item:
                del self.pending[fp]

    def _owe(self, doc: dict[str, Any], labels: dict[str, str], resolved_at: float | None) -> None:
        fp = fingerprint(labels)
        self.pending.pop(fp, None)  # re-insert: the latest state of one alert replaces the older
        self.pending[fp] = Pending(doc, resolved_at)
        while len(self.pending) > self.max_pending:
            self.pending.pop(next(iter(self.pending)))
            self.on_drop(1)
