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
from detectors.compact import EW, pooled_get, restore_slots, slot_state
from detectors.events import Event
from detectors.peers import View

#: _DeniedState's attributes (its ``__slots__``; also what its pickled state names)
_DENIED_STATE_SLOTS = ("start", "count", "resources", "prev", "flagged", "first_event", "base", "pending")


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
        self.pending = 0  # the last closed window's distinct resources, learned once the next one is quiet

    def __getstate__(self) -> dict[str, Any]:
        return slot_state(self, _DENIED_STATE_SLOTS)

    def __setstate__(self, state: Any) -> None:
        restore_slots(self, state)


class Denied(Detector):
    """Flags many distinct resources denied within a short window."""

    name = "denied"
    per_principal = ("state_",)
    state_version = 2  # issue 31's layout (version 1: before it; rebuilt from history)
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
        prior_windows: int = 5,
    ):
        self.window_s = window_s
        self.cap = cap
        self.alpha = alpha
        self.min_resources = min_resources
        self.min_ratio = min_ratio
        self.min_z = min_z
        self.std_floor = std_floor
        self.prior_windows = prior_windows
        self.state_: dict[str, _DeniedState] = {}
        self.peers_: dict[str, EW] = {}
        #: the other partitions' partials (their ``peers_``), read with these: never persisted
        self.others_ = View()

    def partial(self) -> dict[str, EW]:
        """The peer groups' baselines (live objects)."""
        return self.peers_

    def view(self, others: list[Any]) -> None:
        self.others_ = View(tuple(others))

    def _peers(self, key: str) -> EW | None:
        """The peer group's baseline pooled over the partitions (:meth:`EW.pooled`)."""
        return pooled_get(self.peers_, self.others_.parts, key)

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
        mean = self._usual_mean(st.base)
        usual = math.expm1(mean + 2.0 * math.sqrt(st.base.var))
        if distinct < self.min_resources or distinct < self.min_ratio * max(usual, 1.0):
            return None
        x = math.log1p(distinct)
        z = (x - mean) / max(math.sqrt(st.base.var), self.std_floor)
        peers = self._peers(profile.peer_group)
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
                "observed_denied_resources": round(distinct, 1),
                "usual_denied_resources": round(usual, 1),
                "peer_denied_resources": round(peer_usual, 1),
            },
        )

    def _usual_mean(self, base: EW) -> float:
        """The principal's usual ``log1p(distinct denied resources)`` per window with denials, shrunk
        towards one stray denial with the weight of ``prior_windows`` windows: a principal with little
        history of denials has no usual of its own yet, and the first window of a probe (cut in two by
        a window boundary) was learned as its usual."""
        n = base.n
        return (n * base.mean + self.prior_windows * math.log1p(1.0)) / (n + self.prior_windows)

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
        """Close the current window. A closed window is learned one window later, once the next is
        not flagged: a probe cut in two by a window boundary no longer teaches its first part as usual."""
        distinct = len(st.resources)
        if st.pending and not st.flagged:
            st.base.update(math.log1p(st.pending), self.alpha)
            peers = self.peers_.get(profile.peer_group)
            if peers is None:
                peers = self.peers_[profile.peer_group] = EW()
            peers.update(math.log1p(st.pending), self.alpha / 4)
        st.pending = 0 if st.flagged else distinct
        st.prev = distinct if ts < st.start + 2 * self.window_s else 0
        st.start = ts - ts % self.window_s
        st.count, st.flagged, st.first_event = 0, False, ""
        st.resources = array("I")

    def forget(self, principal_id: str) -> None:
        self.state_.pop(principal_id, None)

    def n_principals(self) -> int:
        return len(self.state_)
