"""Account takeover: a principal shows up from new network context at an unusual hour.

Per principal: a 24-bin local hour-of-day profile plus weekday/weekend counts (26 bytes, halved when
a bin saturates) and one bounded seen-set of tagged context hashes (country, IP /24, device, user
agent). The score adds up what is new at once; a new place (country or network) together with a new
machine (device or agent) counts ``place_and_machine`` times (nothing is known about where from and
on what: a trip keeps the laptop, a new laptop stays at the office), and only from a new place is it
multiplied by how unusual the hour is (a new laptop used late at the office is the same person at
work). So travel (new country and network, known device) and a laptop refresh (a new device, maybe
a newer browser) stay below the gate, while a new country, network and device page, the more so at
an odd hour. Service principals are the ``service_misuse`` detector's business.

Sign-ins (authentication events) count as context too: a successful sign-in is scored and learned
like an access (a failed one is neither: it shows who tried, not where the principal works from), and
one without a second factor (``mfa`` false) from new context weighs ``no_mfa_weight`` more.
"""

from __future__ import annotations

import math
from typing import Any, Final

from mypy_extensions import mypyc_attr

from detectors.base import Detector, Finding, Profile
from detectors.compact import SeenSet, ip_prefix, set_with_seen, slot_state
from detectors.days import is_weekend, local_hour
from detectors.events import AUTHENTICATION, CONTEXT_TAGS, Event

__all__ = ["Context", "context_values", "ip_prefix"]

#: what a new value of each context field is worth
WEIGHTS: Final = (("country", 1.0), ("network", 0.5), ("device", 1.0), ("agent", 1.0))
TAGS: Final = CONTEXT_TAGS  # one hash namespace per field of WEIGHTS, shared with service_misuse


def context_values(event: Event) -> tuple[str | None, ...]:
    """(country, network, device, agent) of an access (see :attr:`Event.context_values`)."""
    return event.context_values


#: _ContextState's own attributes (its ``__slots__``); its pickled state names them and ``seen``
_CONTEXT_STATE_SLOTS = ("hours", "n")


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)  # see detectors/native.py
class _ContextState(SeenSet):
    """A principal's hours and the context values it was seen with: it *is* that seen-set (one object
    per principal, not two), pickled under ``seen`` as ``(cap, keys, days)`` (state version 3; version 2
    pickled a SeenSet there, which still loads)."""

    __slots__ = _CONTEXT_STATE_SLOTS

    def __init__(self, cap: int) -> None:
        super().__init__(cap)
        self.hours = bytearray(26)  # 0-23 local hour, 24 weekday events, 25 weekend events
        self.n = 0

    @property
    def seen(self) -> SeenSet:
        return self

    def __getstate__(self) -> dict[str, Any]:
        return {**slot_state(self, _CONTEXT_STATE_SLOTS), "seen": SeenSet.__getstate__(self)}

    def __setstate__(self, state: Any) -> None:
        set_with_seen(self, state)

    def hour_rarity(self, ts: float, tz_offset_s: int) -> float:
        """-log10 of the (smoothed) share of this principal's activity in this local hour and day kind."""
        hours = self.hours
        total = sum(hours[:24])
        p_hour = (hours[local_hour(ts, tz_offset_s)] + 0.5) / (total + 12.0)
        weekend = is_weekend(ts, tz_offset_s)
        days = hours[24] + hours[25]
        p_day = ((hours[25] if weekend else hours[24]) + 0.5) / (days + 1.0) if weekend else 1.0
        return -math.log10(p_hour * p_day)


class Context(Detector):
    """Flags an access from new context (several of country, network, device, agent) at once."""

    name = "context"
    per_principal = ("state_",)
    state_version = 3  # a principal's state is its seen-set (2: held one, loads as 3; 1: before issue 31)
    loads_from_version = 2
    event_kinds = frozenset({"access", AUTHENTICATION})

    def __init__(
        self, cap: int = 16, min_history: int = 10, min_score: float = 3.0, usual_rarity: float = 1.3,
        no_mfa_weight: float = 0.5,
        place_and_machine: float = 1.5,
    ):
        self.place_and_machine = place_and_machine
        self.cap = cap
        self.min_history = min_history
        self.min_score = min_score
        self.usual_rarity = usual_rarity
        self.no_mfa_weight = no_mfa_weight
        self.state_: dict[str, _ContextState] = {}

    @staticmethod
    def _ignored(event: Event) -> bool:
        """Service principals, and sign-ins that failed."""
        return event.principal_kind == "service" or (event.kind == AUTHENTICATION and event.outcome != "allowed")

    def score_one(self, event: Event, profile: Profile) -> Finding | None:
        if self._ignored(event):
            return None
        st = self.state_.get(event.principal_id)
        if st is None or st.n < self.min_history:
            return None
        seen = st.seen
        hashes = event.context_hashes
        device, agent = hashes[2], hashes[3]
        if (device is None or device in seen) and (agent is None or agent in seen):
            return None  # a known device and agent: travel or a new network, not a takeover
        new = [
            (field, value, weight)
            for (field, weight), value, h in zip(WEIGHTS, event.context_values, hashes, strict=True)
            if h is not None and h not in seen
        ]
        rarity = st.hour_rarity(event.ts, event.tz_offset_s)
        novelty = sum(w for _, _, w in new)
        single_factor = event.kind == AUTHENTICATION and event.mfa is False and bool(new)
        if single_factor:
            novelty += self.no_mfa_weight
        place = any(f in ("country", "network") for f, _, _ in new)
        # a new place and a new machine at once: nothing known about where from and on what (a trip
        # keeps the laptop, a new laptop stays at the office); an odd hour counts only from a new place
        # (a new laptop used late at the office is still the same person at work)
        score = novelty * (self.place_and_machine if place else 1.0) * (
            1.0 + max(0.0, rarity - self.usual_rarity) if place else 1.0)
        if score < self.min_score:
            return None
        hour = local_hour(event.ts, event.tz_offset_s)
        share = (st.hours[hour] + 0.5) / (sum(st.hours[:24]) + 12.0)
        return Finding(
            detector=self.name,
            event=event,
            score=score,
            title="Access from new context"
            + (" at an unusual hour" if rarity > self.usual_rarity + 0.5 else ""),
            reasons=[
                "new for this principal: " + ", ".join(f"{f} {v!r}" for f, v, _ in new),
                f"local hour {hour:02d}:00 holds {share:.1%} of this principal's activity "
                f"over {st.n} events (rarity {rarity:.1f})",
            ] + ([f"sign-in to {event.application or 'an application'} without a second factor "
                  f"(method {event.method!r})"] if single_factor else []),
            evidence_event_ids=[event.event_id],
            baseline={"known_context_values": len(st.seen), "hour_share": round(share, 4)},
        )

    def learn_one(self, event: Event, profile: Profile, flagged: bool = False) -> None:
        if flagged or self._ignored(event):
            return
        st = self.state_.get(event.principal_id)
        if st is None:
            st = self.state_[event.principal_id] = _ContextState(self.cap)
        st.n += 1
        st.seen.add_all(event.context_hashes, event.day)
        hours = st.hours
        hour = event.local_hour
        slot = 25 if event.weekend else 24
        if hours[hour] == 255 or hours[slot] == 255:
            for i in range(26):
                hours[i] >>= 1
        hours[hour] += 1
        hours[slot] += 1

    def forget(self, principal_id: str) -> None:
        self.state_.pop(principal_id, None)

    def n_principals(self) -> int:
        return len(self.state_)
