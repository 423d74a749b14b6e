"""Bulk volume: records moved by one principal, per action class, against its own and its peers'
baseline (log scale, exponentially weighted)."""

from __future__ import annotations

import math

from detectors.base import Detector, Finding, Profile
from detectors.events import Event
from detectors.stats import EWStats

EXPORT_ACTIONS = frozenset({"export", "download", "share"})


def action_class(action: str) -> str:
    return "export" if action in EXPORT_ACTIONS else "read"


class Volume(Detector):
    """Flags one access that moves far more records than this principal (and its peers) usually do.

    Score: the smaller of the principal's and the peer group's z-score of ``log1p(records)``
    (both must agree that it is big), gated by ``min_records``.

    >>> from detectors.events import Event
    >>> from detectors.base import Profile
    >>> v, p = Volume(), Profile(first_ts=0.0, last_ts=0.0)
    >>> for i in range(50):
    ...     e = Event(kind="access", event_id=f"e{i}", ts=i, principal_id="u", action="export", records=10)
    ...     v.learn_one(e, p)
    >>> big = Event(kind="access", event_id="x", ts=60, principal_id="u", action="export", records=50_000)
    >>> v.score_one(big, p).score > 5
    True
    """

    name = "volume"

    def __init__(self, alpha: float = 0.05, min_records: int = 1000, min_z: float = 3.0, min_history: int = 20):
        self.alpha = alpha
        self.min_records = min_records
        self.min_z = min_z
        self.min_history = min_history
        self.own_: dict[tuple[str, str], EWStats] = {}
        self.peers_: dict[tuple[str, str], EWStats] = {}

    def score_one(self, event: Event, profile: Profile) -> Finding | None:
        if not event.is_access or event.records < self.min_records or event.outcome != "allowed":
            return None
        cls = action_class(event.action)
        own = self.own_.get((event.principal_id, cls))
        if own is None or own.n < self.min_history:
            return None
        x = math.log1p(event.records)
        z_own = own.z(x)
        peers = self.peers_.get((profile.peer_group, cls))
        z_peer = peers.z(x) if peers is not None and peers.n >= self.min_history else z_own
        score = min(z_own, z_peer)
        if score < self.min_z:
            return None
        usual = math.expm1(own.mean + 2 * own.std)
        peer_usual = math.expm1(peers.mean + 2 * peers.std) if peers is not None else usual
        return Finding(
            detector=self.name,
            event=event,
            score=score,
            title=f"Bulk {event.action} of {event.sensitivity or 'unclassified'} data",
            reasons=[
                f"{event.action} of {event.records:,} records from {event.resource_id}; this principal's "
                f"usual {cls} is up to {usual:,.0f} records (z={z_own:.1f})",
                f"peers ({profile.peer_group}) usually move up to {peer_usual:,.0f} records (z={z_peer:.1f})",
            ],
            evidence_event_ids=[event.event_id],
            baseline={"usual_records": round(usual), "peer_usual_records": round(peer_usual)},
        )

    def learn_one(self, event: Event, profile: Profile, flagged: bool = False) -> None:
        if not event.is_access or flagged or event.outcome != "allowed":
            return
        cls = action_class(event.action)
        x = math.log1p(event.records)
        for table, key in ((self.own_, (event.principal_id, cls)), (self.peers_, (profile.peer_group, cls))):
            stats = table.get(key)
            if stats is None:
                stats = table[key] = EWStats(self.alpha)
            stats.update(x)

    def forget(self, principal_id: str) -> None:
        for cls in ("read", "export"):
            self.own_.pop((principal_id, cls), None)

    def n_principals(self) -> int:
        return len({pid for pid, _ in self.own_})
