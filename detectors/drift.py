"""Organisation-wide and department-wide shifts (a release, quarter-end, a new table), and the
damping of per-principal findings that such a shift explains.

Two mechanisms:

* :class:`ShiftMonitor`: hourly activity of the organisation and of each department, as residuals
  against an hour-of-day × weekday/weekend baseline, fed to River's ``drift.PageHinkley`` (upward).
  A detected shift is reported (an info/low finding, never a page) and marks the department as
  shifting for ``shift_hold_s``.
* Peer surge: per principal, today's number of accesses against its own usual active day (an
  exponentially weighted mean, a few numbers per principal). A principal whose day already holds
  ``surge_ratio`` times its usual is *elevated*; when at least ``surge_share`` of a department's
  principals active today (and ``min_peers``) other than the one being judged are elevated, the
  department is surging as a whole (a quarter-end close) and its members' volume-like findings are
  damped. The share is taken of the members *under way* today (``surge_underway`` of their usual
  day done), not of all active ones: a whole day's excess shows only late in each member's day, and
  early in a surge most members have barely started theirs. One principal's excess (an
  exfiltration, a snooping spree) never makes a surge by itself, nor does a department shift damp
  the findings of a principal that is elevated while hardly any other member is: whether the shift
  is its own doing (a snooper's hundreds of lookups in an hour) or an unrelated blip still held (a
  few events in a quiet night hour), it does not explain them.
* Peer findings: the engine tells this detector about every finding
  (:meth:`Drift.note_finding`); when enough *other* principals of the same department got a finding
  from the same detector within ``peer_window_s``, the department is doing the same thing right now
  and :meth:`Drift.is_peer_shift` says so, whatever the monitors have seen yet.
"""

from __future__ import annotations

from typing import Any, Final

from mypy_extensions import mypyc_attr

from detectors.base import Detector, Finding, Profile
from detectors.compact import h32
from detectors.days import DAY_S, HOUR_S
from detectors.events import Event
from detectors.peers import View
from detectors.shift import Hour, ShiftMonitor

_Hour = Hour  # snapshots written before detectors/shift.py name it detectors.drift._Hour

_DEPT_KEYS: Final[dict[str | None, str]] = {}


def dept_key(department: str | None) -> str:
    """``"dept:<department>"`` (``dept:-`` without one), memoised: it is needed for every event.

    >>> dept_key("sales"), dept_key(None)
    ('dept:sales', 'dept:-')
    """
    key = _DEPT_KEYS.get(department)
    if key is None:
        if len(_DEPT_KEYS) >= 10_000:  # a cache, not state
            _DEPT_KEYS.clear()
        key = _DEPT_KEYS[department] = f"dept:{department or '-'}"
    return key


#: _Day's attributes, in the order its pickled state lists them
_DAY_SLOTS = ("day", "count", "usual", "days", "surged")


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)  # see detectors/native.py
class _Day:
    """One principal's day of activity: a record of unboxed fields, not a five-item list (160 bytes with
    its boxed numbers, 64 compiled). Pickled as a tuple: a small state that unpickles fast."""

    __slots__ = _DAY_SLOTS

    def __init__(self, day: int, count: int = 0, usual: float = 0.0, days: int = 0, surged: bool = False) -> None:
        self.day = day
        self.count = count  # events today
        self.usual = usual  # usual events per active day
        self.days = days  # active days learned
        self.surged = surged  # elevated today

    def __getstate__(self) -> tuple:
        return (self.day, self.count, self.usual, self.days, self.surged)

    def __setstate__(self, state: tuple) -> None:
        self.day, self.count, self.usual, self.days, self.surged = state


class Drift(Detector):
    """Reports organisation and department shifts; damps findings a whole department shares."""

    name = "drift"
    per_principal = ("days_",)
    state_version = 2  # a principal's day as a _Day record (version 1: a five-item list)
    event_kinds = frozenset({"access"})

    def __init__(
        self,
        threshold: float = 6.0,
        shift_hold_s: float = DAY_S,
        peer_window_s: float = DAY_S,
        min_peers: int = 2,
        min_peer_share: float = 0.05,
        max_notes: int = 32,
        surge_ratio: float = 1.5,
        surge_min_events: int = 10,
        surge_share: float = 0.25,
        surge_min_days: int = 3,
        surge_underway: float = 0.5,
    ):
        self.threshold = threshold
        self.shift_hold_s = shift_hold_s
        self.peer_window_s = peer_window_s
        self.min_peers = min_peers
        self.min_peer_share = min_peer_share
        self.max_notes = max_notes
        self.surge_ratio = surge_ratio
        self.surge_min_events = surge_min_events
        self.surge_share = surge_share
        self.surge_min_days = surge_min_days
        self.surge_underway = surge_underway
        #: principal -> [day, accesses today, usual accesses per active day, active days, elevated today]
        self.days_: dict[str, _Day] = {}
        #: department key -> (day, principals elevated that day)
        self.elevated_: dict[str, tuple[int, int]] = {}
        #: department key -> (day, principals under way that day: surge_underway of a usual day done)
        self.underway_: dict[str, tuple[int, int]] = {}
        self.monitors_: dict[str, ShiftMonitor] = {}
        self.hours_: dict[str, Hour] = {}
        self.shift_until_: dict[str, float] = {}
        self.reports_: dict[str, tuple[float, float]] = {}  # key -> (hour start, events) to report
        self.notes_: dict[tuple[str, str], list[tuple[int, float]]] = {}
        #: the other partitions' partials (:meth:`partial`), read with these: never persisted
        self.others_ = View()

    def partial(self) -> tuple[dict[str, tuple[int, int]], dict[str, tuple[int, int]], dict[str, Hour],
                               dict[tuple[str, str], list[tuple[int, float]]]]:
        """The departments' elevated and under-way counts, the hourly activity of each scope and the
        peer findings (live objects)."""
        return self.elevated_, self.underway_, self.hours_, self.notes_

    def view(self, others: list[Any]) -> None:
        self.others_ = View(tuple(others))

    def _day_count(self, index: int, dept: str, day: int) -> int:
        """Day ``day``'s count of ``elevated_`` (``index`` 0) or ``underway_`` (1) for a department, added
        up over the partitions."""
        mine = self.elevated_ if index == 0 else self.underway_
        d, count = mine.get(dept, (-1, 0))
        total = count if d == day else 0
        for part in self.others_.parts:
            d, count = part[index].get(dept, (-1, 0))
            if d == day:
                total += count
        return total

    def _active(self, dept: str) -> float:
        """Distinct principals of a department active today, added up over the partitions (each
        principal lives in one): the others' counts of the same day as this partition's."""
        hour = self.hours_.get(dept)
        if hour is None:
            return 0.0
        active = hour.active.estimate()
        for part in self.others_.parts:
            theirs = part[2].get(dept)
            if theirs is not None and theirs.day == hour.day:
                active += theirs.active.estimate()
        return active

    @staticmethod
    def _keys(event: Event) -> tuple[str, str]:
        return "org", dept_key(event.department)

    # -- reporting shifts ---------------------------------------------------------------------
    def score_one(self, event: Event, profile: Profile) -> Finding | None:
        if not self.reports_:
            return None  # the usual case: no shift waiting to be reported
        for key in self._keys(event):
            report = self.reports_.get(key)
            if report is not None:
                return self._report(event, key, *report)
        return None

    def _report(self, event: Event, key: str, hour_start: float, events: float) -> Finding:
        usual = self.monitors_[key].usual(hour_start)
        who = "the organisation" if key == "org" else f"department {key[5:]}"
        return Finding(
            detector=self.name,
            event=event,
            score=events / max(usual, 1.0),
            title=f"Activity shift in {who}",
            reasons=[
                f"{events:.0f} events in the hour from {hour_start:.0f} (epoch s); usual for that hour "
                f"is {usual:.0f} (Page-Hinkley upward drift, threshold {self.threshold})",
                f"findings in {who} that the shift explains are damped for {self.shift_hold_s / 3600:.0f} h",
            ],
            evidence_event_ids=[event.event_id],
            baseline={"usual_events_per_hour": round(usual, 1),
                      "scope": "organisation" if key == "org" else "department"},
            max_severity=25.0,
            needs_history=False,
        )

    def _track_day(self, event: Event, dept: str) -> None:
        day = int((event.ts + event.tz_offset_s) // DAY_S)
        st = self.days_.get(event.principal_id)
        if st is None:
            st = self.days_[event.principal_id] = _Day(day)
        elif day != st.day:
            if st.count:
                n = st.days + 1
                # usual day: plain mean while young, then exponential forgetting; surge days count less
                a = max(0.1, 1.0 / n) * (0.25 if st.surged else 1.0)
                st.usual += a * (st.count - st.usual)
                st.days = n
            st.day, st.count, st.surged = day, 0, False
        st.count += 1
        if st.days >= self.surge_min_days and st.count - 1 < self.surge_underway * st.usual <= st.count:
            d, count = self.underway_.get(dept, (day, 0))  # crossed just now: counted once a day
            self.underway_[dept] = (day, count + 1 if d == day else 1)
        if (
            not st.surged
            and st.days >= self.surge_min_days
            and st.count >= max(self.surge_min_events, self.surge_ratio * st.usual)
        ):
            st.surged = True
            d, count = self.elevated_.get(dept, (day, 0))
            self.elevated_[dept] = (day, count + 1 if d == day else 1)

    def learn_one(self, event: Event, profile: Profile, flagged: bool = False) -> None:
        dept = dept_key(event.department)
        self._track_day(event, dept)
        pid_key = h32(event.principal_id)
        self._count("org", pid_key, event.ts)
        self._count(dept, pid_key, event.ts)

    def _count(self, key: str, pid_key: int, ts: float) -> None:
        """One event of principal ``pid_key`` in scope ``key``'s current hour (a method called per scope:
        compiled, a loop over a tuple of the two was generic iteration, about 400 instructions)."""
        if self.reports_:
            self.reports_.pop(key, None)
        hour = self.hours_.get(key)
        if hour is None:
            hour = self.hours_[key] = Hour(ts - ts % HOUR_S)
        elif ts >= hour.start + HOUR_S:
            self._close(key, hour, ts)
        hour.events += 1
        hour.active.add(pid_key)

    def _close(self, key: str, hour: Hour, ts: float) -> None:
        monitor = self.monitors_.get(key)
        if monitor is None:
            monitor = self.monitors_[key] = ShiftMonitor(threshold=self.threshold)
        events = hour.events
        for part in self.others_.parts:
            theirs = part[2].get(key)
            if theirs is not None:
                events += theirs.events_in(hour.start)
        if monitor.update(hour.start, events):
            self.shift_until_[key] = ts + self.shift_hold_s
            self.reports_[key] = (hour.start, events)
        hour.prev_start, hour.prev_events = hour.start, hour.events
        hour.start = ts - ts % HOUR_S
        hour.events = 0
        if ts - hour.day >= DAY_S:
            hour.day = ts - ts % DAY_S
            hour.active.clear()

    # -- damping ------------------------------------------------------------------------------
    def note_finding(self, finding: Finding, profile: Profile) -> None:
        """Remember that a principal of a department got a finding (called by the engine)."""
        event = finding.event
        key = (dept_key(event.department), finding.detector)
        notes = self.notes_.setdefault(key, [])
        horizon = event.ts - self.peer_window_s
        notes[:] = [n for n in notes if n[1] >= horizon][-self.max_notes + 1 :]
        notes.append((h32(event.principal_id), event.ts))

    def is_peer_shift(self, finding: Finding, profile: Profile) -> bool:
        """Whether the principal's department is shifting as a whole, or enough other members got
        the same kind of finding recently."""
        event = finding.event
        dept = dept_key(event.department)
        active = self._active(dept)
        if self.shift_until_.get(dept, 0.0) > event.ts and not self._alone(event, dept, active):
            return True  # (an organisation-wide shift is reported, but damps nothing by itself)
        if self._surging(event, dept, active):
            return True
        me = h32(event.principal_id)
        horizon = event.ts - self.peer_window_s
        key = (dept, finding.detector)
        others = {pid for pid, ts in self.notes_.get(key, ()) if pid != me and ts >= horizon}
        for part in self.others_.parts:  # the same kind of finding in other partitions' members
            others.update(pid for pid, ts in part[3].get(key, ()) if ts >= horizon)
        return len(others) >= max(self.min_peers, self.min_peer_share * active)

    def _elevated_today(self, event: Event, dept: str) -> tuple[bool, int]:
        """(whether the principal is elevated today, how many *other* members of its department are)."""
        day = int((event.ts + event.tz_offset_s) // DAY_S)
        st = self.days_.get(event.principal_id)
        me = st is not None and st.day == day and st.surged
        if self.others_.parts:
            return me, self._day_count(0, dept, day) - me
        d, count = self.elevated_.get(dept, (-1, 0))
        return me, (count - me if d == day else 0)

    def _alone(self, event: Event, dept: str, active: float) -> bool:
        """Whether the principal is elevated today while the department as a whole is not (fewer other
        members elevated than a surge needs): a shift of the department's hourly activity does not
        explain its finding then, whether the shift is its own doing (a snooper's hundreds of lookups)
        or an unrelated blip still held. A share, not a count: in a large team a few members are
        elevated on any ordinary day."""
        me, others = self._elevated_today(event, dept)
        return me and others < max(self.min_peers, self.surge_share * active)

    def _surging(self, event: Event, dept: str, active: float) -> bool:
        """Whether enough *other* members of the department are elevated today: a share of those
        under way (at most of all active), so that a surge shows from the morning on."""
        me, others = self._elevated_today(event, dept)  # the principal judged is not its own peer
        day = int((event.ts + event.tz_offset_s) // DAY_S)
        underway = self._day_count(1, dept, day)
        if self.surge_underway > 0:  # the members under way (the principal judged is not its own peer)
            active = min(active, max(0.0, float(underway) - me))
        return others >= max(self.min_peers, self.surge_share * active)

    def forget(self, principal_id: str) -> None:
        self.days_.pop(principal_id, None)

    def n_principals(self) -> int:
        return len(self.days_)

    def migrate(self, version: int, state: Any, shared: bool) -> Any:
        """Version 1 kept a principal's day as a list ``[day, count, usual, days, surged]``; the shared
        state is unchanged."""
        if version != 1:
            return super().migrate(version, state, shared)
        if shared:
            return state
        return tuple(None if value is None else _Day(*value) for value in state)
