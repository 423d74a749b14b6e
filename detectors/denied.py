"""Probing: a burst of denied requests over many distinct resources, against the principal's own
and its peers' usual number of denied resources per active window.

Per principal: the current ``window_s`` window (start, denied count, up to ``cap`` distinct resource
hashes, first event id), the previous window's distinct count (for an approximately sliding window)
and an exponentially weighted baseline of ``log1p(distinct denied resources)`` per window with any
denial.
"""

from __future__ import annotations

import math
from array import array
from typing import Any

from mypy_extensions import mypyc_attr

from detectors.base import Detector, Finding, Profile
from detectors.compact import EW, restore_slots, slot_state
from detectors.events import Event

#: _DeniedState's attributes (its ``__slots__``; also what its pickled state names)
_DENIED_STATE_SLOTS = ("start", "count", "resources", "prev", "flagged", "first_event", "base")


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)  # see detectors/native.py
class _DeniedState:
    __slots__ = _DENIED_STATE_SLOTS

    def __init__(self, start: float) -> None:
        self.start = start
        self.count = 0
        self.resources = array("I")
        self.prev = 0
        self.flagged = False
        self.first_event = ""
        self.base = EW()

    def __getstate__(self) -> dict[str, Any]:
        return slot_state(self, _DENIED_STATE_SLOTS)

    def __setstate__(self, state: Any) -> None:
        restore_slots(self, state)


class Denied(Detector):
    """Flags many distinct resources denied within a short window."""

    name = "denied"
    per_principal = ("state_",)
    event_kinds = frozenset({"access"})
    shift_sensitive = False  # a department does not probe en masse

    def __init__(
        self,
        window_s: float = 900.0,
        cap: int = 64,
        alpha: float = 0.05,
        min_resources: int = 5,
        min_ratio: float = 3.0,
        min_z: float = 3.0,
        std_floor: float = 0.4,
    ):
        self.window_s = window_s
        self.cap = cap
        self.alpha = alpha
        self.min_resources = min_resources
        self.min_ratio = min_ratio
        self.min_z = min_z
        self.std_floor = std_floor
        self.state_: dict[str, _DeniedState] = {}
        self.peers_: dict[str, EW] = {}

    def _distinct_with(self, st: _DeniedState, event: Event) -> tuple[float, int]:
        """(sliding distinct-resource count including ``event``, denials in the window)."""
        new = event.resource_hash not in st.resources
        if event.ts >= st.start + self.window_s:
            prev = len(st.resources) if event.ts < st.start + 2 * self.window_s else 0
            return 1 + prev * (1.0 - (event.ts % self.window_s) / self.window_s), 1
        share = 1.0 - (event.ts - st.start) / self.window_s
        return len(st.resources) + new + st.prev * share, st.count + 1

    def score_one(self, event: Event, profile: Profile) -> Finding | None:
        if event.outcome != "denied":
            return None
        st = self.state_.get(event.principal_id)
        if st is None:
            return None
        distinct, count = self._distinct_with(st, event)
        usual = math.expm1(st.base.upper()) if st.base.n else 0.0
        if distinct < self.min_resources or distinct < self.min_ratio * max(usual, 1.0):
            return None
        x = math.log1p(distinct)
        z = st.base.z(x, self.std_floor) if st.base.n else x / self.std_floor
        peers = self.peers_.get(profile.peer_group)
        peer_usual = math.expm1(peers.upper()) if peers is not None and peers.n else 0.0
        if peers is not None and peers.n >= 10:
            z = min(z, peers.z(x, self.std_floor))
        if z < self.min_z:
            return None
        minutes = self.window_s / 60
        return Finding(
            detector=self.name,
            event=event,
            score=z,
            title="Burst of denied requests over many resources",
            reasons=[
                f"{count} denied requests on ~{distinct:.0f} distinct resources in the last {minutes:.0f} "
                f"minutes; this principal's usual is up to {usual:.0f} resources per window with denials "
                f"(z={z:.1f})",
                f"peers ({profile.peer_group}) usually up to {peer_usual:.0f}",
            ],
            evidence_event_ids=[e for e in (st.first_event, event.event_id) if e],
            baseline={
                "usual_denied_resources": round(usual, 1),
                "peer_denied_resources": round(peer_usual, 1),
            },
        )

    def learn_one(self, event: Event, profile: Profile, flagged: bool = False) -> None:
        if event.outcome != "denied":
            return
        st = self.state_.get(event.principal_id)
        if st is None:
            st = self.state_[event.principal_id] = _DeniedState(event.ts - event.ts % self.window_s)
        if event.ts >= st.start + self.window_s:
            self._close(st, profile, event.ts)
        h = event.resource_hash
        if h not in st.resources and len(st.resources) < self.cap:
            st.resources.append(h)
        st.count += 1
        st.flagged = st.flagged or flagged
        if not st.first_event:
            st.first_event = event.event_id

    def _close(self, st: _DeniedState, profile: Profile, ts: float) -> None:
        distinct = len(st.resources)
        if distinct and not st.flagged:
            st.base.update(math.log1p(distinct), self.alpha)
            peers = self.peers_.get(profile.peer_group)
            if peers is None:
                peers = self.peers_[profile.peer_group] = EW()
            peers.update(math.log1p(distinct), self.alpha / 4)
        st.prev = distinct if ts < st.start + 2 * self.window_s else 0
        st.start = ts - ts % self.window_s
        st.count, st.flagged, st.first_event = 0, False, ""
        st.resources = array("I")

    def forget(self, principal_id: str) -> None:
        self.state_.pop(principal_id, None)

    def n_principals(self) -> int:
        return len(self.state_)
