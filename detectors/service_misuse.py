"""Service credentials used like a person: a service principal seen from a new network or country,
with a browser-like user agent, doing exports or downloads it never does, at office hours unlike
its round-the-clock profile.

Per service principal: one bounded seen-set of tagged hashes (country, IP /24, device, agent,
action) and a 24-bin UTC hour profile.
"""

from __future__ import annotations

from typing import Any, Final

from mypy_extensions import mypyc_attr

from detectors.base import Detector, Finding, Profile
from detectors.compact import SeenSet, restore_slots, slot_state, tagged
from detectors.days import HOUR_S
from detectors.events import Event
from detectors.volume import EXPORT_ACTIONS

#: the context fields, in the order of :attr:`Event.context_values`
FIELDS: Final = ("country", "network", "device", "agent")
BROWSER_MARKERS: Final = ("mozilla/", "applewebkit", "chrome/", "safari/", "firefox/", "edg/")
#: what a person at a desk types from: a desktop operating system in the agent (a service does not run on
#: a Mac or a Windows workstation: CLIs and SDKs name the platform, ``aws-cli/1.18 ... Darwin/19.5.0``),
#: or an interactive HTTP tool
DESK_MARKERS: Final = ("darwin/", "macintosh", "windows nt", "windowspowershell", "curl/", "postmanruntime/")


def looks_like_browser(user_agent: str | None) -> bool:
    """
    >>> looks_like_browser("Mozilla/5.0 (X11)"), looks_like_browser("etl-runner/2.1")
    (True, False)
    >>> looks_like_browser(None)
    False
    """
    ua = (user_agent or "").lower()
    return any(marker in ua for marker in BROWSER_MARKERS)


def looks_like_desk(user_agent: str | None) -> bool:
    """
    >>> looks_like_desk("[aws-cli/1.18.136 Python/3.8.5 Darwin/19.5.0 botocore/1.17.59]")
    True
    >>> looks_like_desk("aws-cli/2.15.0 Python/3.11.6 Linux/6.5 exe/x86_64"), looks_like_desk("curl/8.4.0")
    (False, True)
    """
    ua = (user_agent or "").lower()
    return any(marker in ua for marker in DESK_MARKERS)


#: _ServiceState's attributes (its ``__slots__``; also what its pickled state names)
_SERVICE_STATE_SLOTS = ("seen", "hours", "n")


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)  # see detectors/native.py
class _ServiceState:
    __slots__ = _SERVICE_STATE_SLOTS

    def __init__(self, cap: int) -> None:
        self.seen = SeenSet(cap)
        self.hours = bytearray(24)
        self.n = 0

    def __getstate__(self) -> dict[str, Any]:
        return slot_state(self, _SERVICE_STATE_SLOTS)

    def __setstate__(self, state: Any) -> None:
        restore_slots(self, state)


class ServiceMisuse(Detector):
    """Flags a service principal acting like a human (scored only for ``principal_kind == "service"``)."""

    name = "service_misuse"
    per_principal = ("state_",)
    event_kinds = frozenset({"access"})

    def __init__(self, cap: int = 24, min_history: int = 50, min_score: float = 2.5):
        self.cap = cap
        self.min_history = min_history
        self.min_score = min_score
        self.state_: dict[str, _ServiceState] = {}

    @staticmethod
    def _keyed(event: Event) -> list[tuple[str, str, int]]:
        """(field, value, hash) of each present context field and the action, hashed in namespaces
        1-5 (the context detector's four, then the action): one seen-set holds them all."""
        values, hashes = event.context_values, event.context_hashes
        keyed = []  # by position: compiled, zip(..., strict=True) is a generic call (about 3k instructions)
        for i in range(len(FIELDS)):
            value, h = values[i], hashes[i]
            if value and h is not None:
                keyed.append((FIELDS[i], value, h))
        if event.action:
            keyed.append(("action", event.action, tagged(5, event.action)))
        return keyed

    @staticmethod
    def _hashes(event: Event) -> list[int]:
        """The hashes of :meth:`_keyed` alone: all that learning, and the usual score (nothing new), need."""
        values, hashes = event.context_values, event.context_hashes
        out = []
        for i in range(len(FIELDS)):
            h = hashes[i]
            if values[i] and h is not None:
                out.append(h)
        if event.action:
            out.append(tagged(5, event.action))
        return out

    def score_one(self, event: Event, profile: Profile) -> Finding | None:
        if event.principal_kind != "service":
            return None
        st = self.state_.get(event.principal_id)
        if st is None or st.n < self.min_history:
            return None
        known = st.seen
        for h in self._hashes(event):
            if known.find(h) < 0:
                break
        else:
            return None  # nothing new: the usual case, decided without building the (field, value) pairs
        new = {field: value for field, value, h in self._keyed(event) if h not in known}
        signals: list[tuple[float, str]] = []
        if "country" in new:
            signals.append((1.5, f"new country {new['country']!r}"))
        if "network" in new:
            signals.append((1.0, f"new network {new['network']}.0/24"))
        if "device" in new:
            signals.append((0.5, f"new host/device {new['device']!r}"))
        if "agent" in new and looks_like_browser(event.user_agent):
            signals.append((1.5, f"browser-like user agent {event.user_agent!r}"))
        elif "agent" in new and looks_like_desk(event.user_agent):
            signals.append((1.5, f"a person's tool or desktop in the user agent {event.user_agent!r}"))
        elif "agent" in new:
            signals.append((0.5, f"new user agent {event.user_agent!r}"))
        if "action" in new and event.action in EXPORT_ACTIONS:
            signals.append((1.5, f"{event.action}, which this service never does"))
        hour = int(event.ts // HOUR_S) % 24
        total = sum(st.hours)
        share = (st.hours[hour] + 0.5) / (total + 12.0)
        if share < 0.25 / 24:
            signals.append((0.5, f"UTC hour {hour:02d} holds {share:.1%} of its activity"))
        score = sum(w for w, _ in signals)
        if score < self.min_score or len(signals) < 2:
            return None
        return Finding(
            detector=self.name,
            event=event,
            score=score,
            title="Service credentials used like a person",
            reasons=[why for _, why in signals] + [f"profile of {st.n} events, {len(st.seen)} known values"],
            evidence_event_ids=[event.event_id],
            baseline={"known_values": len(st.seen), "events": st.n},
        )

    def learn_one(self, event: Event, profile: Profile, flagged: bool = False) -> None:
        if flagged or event.principal_kind != "service":
            return
        st = self.state_.get(event.principal_id)
        if st is None:
            st = self.state_[event.principal_id] = _ServiceState(self.cap)
        st.n += 1
        st.seen.add_all(self._hashes(event), event.day)
        hour = int(event.ts // HOUR_S) % 24
        if st.hours[hour] == 255:
            for i in range(24):
                st.hours[i] >>= 1
        st.hours[hour] += 1

    def forget(self, principal_id: str) -> None:
        self.state_.pop(principal_id, None)

    def n_principals(self) -> int:
        return len(self.state_)
