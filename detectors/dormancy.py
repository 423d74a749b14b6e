"""Dormant accounts waking up: a principal silent for long *by its own rhythm* touches sensitive data,
and what it touches on waking says whether that is a return from leave or someone else at work.

Silence is relative: a principal active every working day whose longest usual gap is a weekend is
dormant after two silent weeks, while one that works a day a fortnight is not. Per principal, its
rhythm (:class:`_Rhythm`): the longest gap between its active days (slowly forgotten), its active
local hours, and a bounded seen-set of the resources it used and the devices, countries and networks
(IP /24) it worked from. A silence of
``min_relative`` times the usual longest gap, and ``min_silence_days`` at least, is a wake-up; it
pages when what the principal does on waking is not its usual work: sensitive data at an hour it
never works (a payroll table at night), restricted data it never used, or a new device, country or
network. A return from leave (the usual tables, at the usual hours, from the usual laptop) is
reported at a low level. A silence of ``min_silence_s`` (30 days) is dormancy whatever the rhythm.

The rhythm is the detector's own, with a long TTL (``ttl_s``), because the engine forgets idle
principals after 45 days and dormancy is about exactly those. For a day after waking, the silence
stays on record until the principal touches sensitive data.
"""

from __future__ import annotations

from typing import Any, Final

from mypy_extensions import mypyc_attr

from detectors.base import Detector, Finding, Profile
from detectors.compact import SeenSet, set_with_seen, slot_state
from detectors.days import DAY_S
from detectors.events import ACCESS, Event

#: a new gap counts fully; the usual longest gap forgets by this factor per active day
_GAP_DECAY: Final = 0.98


#: _Rhythm's own attributes (its ``__slots__``); its pickled state names them and ``seen``
_RHYTHM_SLOTS = ("last_ts", "wake_ts", "day", "active_days", "max_gap", "hours")


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)  # see detectors/native.py
class _Rhythm(SeenSet):
    """A principal's rhythm, and the resources and context values it was seen with: it *is* that
    seen-set (one object per principal, not two), pickled under ``seen`` as ``(cap, keys, days)``
    (state version 3; version 2 pickled a SeenSet there, which still loads)."""

    __slots__ = _RHYTHM_SLOTS

    def __init__(self, cap: int) -> None:
        super().__init__(cap)  # the resources used, and context values (country, network, device) seen
        self.last_ts = 0.0
        self.wake_ts = 0.0  # when it woke up from a silence not yet judged on sensitive data (0: awake)
        self.day = -1  # the last active local day
        self.active_days = 0
        self.max_gap = 0.0  # the usual longest gap between active days, in days
        self.hours = bytearray(24)  # local hours of activity (halved when one saturates)

    @property
    def seen(self) -> SeenSet:
        return self

    def __getstate__(self) -> dict[str, Any]:
        return {**slot_state(self, _RHYTHM_SLOTS), "seen": SeenSet.__getstate__(self)}

    def __setstate__(self, state: Any) -> None:
        set_with_seen(self, state)

    def hour_share(self, hour: int) -> float:
        """Share of the principal's activity in this local hour and the two next to it."""
        hours = self.hours
        near = hours[hour] + hours[(hour + 1) % 24] + hours[(hour + 23) % 24]
        return near / max(sum(hours), 1)


class Dormancy(Detector):
    """Flags the first sensitive access after a silence long for this principal; needs no engine history."""

    name = "dormancy"
    per_principal = ("state_",)
    state_version = 3  # a principal's rhythm is its seen-set (2: held one, loads as 3; 1: before issue 31)
    loads_from_version = 2

    def __init__(
        self,
        min_silence_s: float = 2_592_000.0,  # 30 days (a literal: see Detector._get_params)
        ttl_s: float = 34_560_000.0,  # 400 days
        min_rank: int = 2,
        new_context_min_severity: float = 65.0,
        min_silence_days: float = 7.0,
        min_relative: float = 2.5,
        min_active_days: int = 3,
        odd_hour_share: float = 0.02,
        cap_seen: int = 32,
    ):
        self.min_silence_s = min_silence_s
        self.ttl_s = ttl_s
        self.min_rank = min_rank
        self.new_context_min_severity = new_context_min_severity
        self.min_silence_days = min_silence_days
        self.min_relative = min_relative
        self.min_active_days = min_active_days
        self.odd_hour_share = odd_hour_share
        self.cap_seen = cap_seen
        self.state_: dict[str, _Rhythm] = {}
        self._next_prune = 0.0

    def _silence(self, st: _Rhythm, event: Event) -> tuple[float, float]:
        """(silent days, silence over the usual longest gap) before this event."""
        days = ((st.wake_ts or event.ts) - st.last_ts) / DAY_S
        return days, days / max(st.max_gap, 1.0)

    def score_one(self, event: Event, profile: Profile) -> Finding | None:
        st = self.state_.get(event.principal_id)
        if st is None or event.kind != ACCESS or event.sensitivity_rank < self.min_rank:
            return None
        days, relative = self._silence(st, event)
        long = days * DAY_S >= self.min_silence_s
        if not long and (days < self.min_silence_days or relative < self.min_relative
                         or st.active_days < self.min_active_days):
            return None
        new_context = [name for name, h in zip(("country", "network", "device"), event.context_hashes, strict=False)
                       if h is not None and h not in st.seen]
        odd_hour = st.hour_share(event.local_hour) < self.odd_hour_share
        new_resource = event.sensitivity == "restricted" and event.resource_hash not in st.seen
        unusual = [*new_context, *(["an hour it never works"] if odd_hour else []),
                   *(["restricted data it never used"] if new_resource else [])]
        score = relative * (1.0 + len(unusual)) * (1.5 if event.sensitivity == "restricted" else 1.0)
        return Finding(
            detector=self.name,
            event=event,
            score=score,
            title=f"Dormant account active again after {days:.0f} days",
            reasons=[
                f"no activity for {days:.0f} days, {relative:.1f}x this principal's usual longest gap of "
                f"{max(st.max_gap, 1.0):.0f} days over {st.active_days} active days; now {event.action} on "
                f"{event.sensitivity} {event.resource_id} at {event.local_hour:02d}:00 local",
                "unlike its usual work: " + (", ".join(unusual) if unusual else
                                             "nothing (its usual data, hours, device, country and network)"),
            ],
            evidence_event_ids=[event.event_id],
            baseline={"silent_days": round(days, 1), "usual_longest_gap_days": round(max(st.max_gap, 1.0), 1),
                      "active_days": st.active_days},
            min_severity=self.new_context_min_severity if new_context else 0.0,
            # a return to the usual work after a long absence is a return from leave: reported only
            max_severity=100.0 if unusual or long else 45.0,
            needs_history=False,
        )

    def learn_one(self, event: Event, profile: Profile, flagged: bool = False) -> None:
        if event.kind == ACCESS:
            st = self.state_.get(event.principal_id)
            if st is None:
                st = self.state_[event.principal_id] = _Rhythm(self.cap_seen)
            self._learn(st, event)
        if event.ts >= self._next_prune:
            horizon = event.ts - self.ttl_s
            self.state_ = {pid: st for pid, st in self.state_.items() if st.last_ts >= horizon}
            self._next_prune = event.ts + DAY_S

    def _learn(self, st: _Rhythm, event: Event) -> None:
        hours, hour = st.hours, event.local_hour
        if hours[hour] == 255:
            for i in range(24):
                hours[i] >>= 1
        hours[hour] += 1
        if st.active_days and (event.ts - st.last_ts) / DAY_S >= self.min_silence_days \
                and event.sensitivity_rank < self.min_rank and event.ts - (st.wake_ts or event.ts) < DAY_S:
            # awake but not yet on sensitive data: keep the silence on record for a day
            st.wake_ts = st.wake_ts or event.ts
            return
        if event.ts - st.last_ts < 3600.0 and not st.wake_ts:
            st.last_ts = event.ts  # active right now: day, resources and context were refreshed within the hour
            if event.resource_id:
                st.seen.add(event.resource_hash, event.day)
            return
        day = int((event.ts + event.tz_offset_s) // DAY_S)
        if day != st.day:
            if st.day >= 0:
                gap = float(day - st.day)
                st.max_gap = max(gap, st.max_gap * _GAP_DECAY)
            st.day, st.active_days = day, st.active_days + 1
        st.last_ts, st.wake_ts = event.ts, 0.0
        hashes = event.context_hashes
        st.seen.add_all((hashes[0], hashes[1], hashes[2], event.resource_hash if event.resource_id else None),
                        event.day)

    def forget(self, principal_id: str) -> None:
        """Idle principals are exactly what this detector watches: kept until ``ttl_s`` passes."""

    def n_principals(self) -> int:
        return len(self.state_)
