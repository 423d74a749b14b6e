"""Slow exfiltration: daily export totals that sit above the principal's norm day after day, rising.

Per principal, in a few dozen bytes: the current (local) day's export total, an exponentially
weighted baseline of ``log1p(daily total)`` over active days, and the standard scores of the last
seven closed days. A finding needs ``min_days`` consecutive days (today included) above the
allowance ``elevated_z``, a one-sided CUSUM of their z-scores over ``threshold`` (Page, 1954), today
clearly high, and a rising run (Kendall's S over the last five days positive).
"""

from __future__ import annotations

import math
from array import array

from detectors.base import Detector, Finding, Profile
from detectors.compact import DAY_S, EW
from detectors.events import Event

HISTORY_DAYS = 7


class _DayState:
    __slots__ = ("day", "today", "base", "recent", "fired_day", "first_event")

    def __init__(self, day: int) -> None:
        self.day = day
        self.today = 0.0
        self.base = EW()
        self.recent = array("b")  # z·10 of the last closed active days, oldest first
        self.fired_day = -1
        self.first_event = ""


def kendall_s(values: list[float]) -> int:
    """Mann-Kendall S: pairs rising minus pairs falling.

    >>> kendall_s([1, 2, 3]), kendall_s([3, 2, 1]), kendall_s([1, 3, 2])
    (3, -3, 1)
    """
    s = 0
    for i, a in enumerate(values):
        for b in values[i + 1 :]:
            s += (b > a) - (b < a)
    return s


class SlowExfiltration(Detector):
    """Flags the day that completes a run of ``min_days`` elevated, rising daily export totals.

    >>> from detectors.base import Profile
    >>> d, p = SlowExfiltration(), Profile(first_ts=0.0, last_ts=0.0)
    >>> def day(n, records):
    ...     e = Event(kind="access", event_id=f"e{n}", ts=n * 86_400 + 36_000, principal_id="u",
    ...               action="export", records=records)
    ...     f = d.score_one(e, p)
    ...     d.learn_one(e, p, flagged=f is not None)
    ...     return f
    >>> [day(n, 100 + n % 3 * 10) for n in range(14)].count(None)
    14
    >>> [day(14 + n, 400 * 2 ** n) is not None for n in range(5)]
    [False, False, False, True, True]
    """

    name = "slow_exfiltration"
    event_kinds = frozenset({"access"})
    shift_sensitive = True

    def __init__(
        self,
        alpha: float = 0.1,
        elevated_z: float = 0.5,
        min_days: int = 4,
        threshold: float = 8.0,
        min_today_z: float = 2.0,
        min_history_days: int = 5,
        min_daily_records: int = 500,
        std_floor: float = 0.35,
        page: bool = False,
    ):
        self.alpha = alpha
        self.elevated_z = elevated_z
        self.min_days = min_days
        self.threshold = threshold
        self.min_today_z = min_today_z
        self.min_history_days = min_history_days
        self.min_daily_records = min_daily_records
        self.std_floor = std_floor
        self.page = page
        self.state_: dict[str, _DayState] = {}
        self.peers_: dict[str, EW] = {}

    @staticmethod
    def _day(event: Event) -> int:
        return int((event.ts + event.tz_offset_s) // DAY_S)

    def _run(self, st: _DayState) -> list[float]:
        """The trailing closed days whose z exceeds the CUSUM allowance ``elevated_z``."""
        run: list[float] = []
        for z10 in reversed(st.recent):
            if z10 < self.elevated_z * 10:
                break
            run.append(z10 / 10.0)
        return run[::-1]

    def _cusum(self, run: list[float], z_today: float) -> float:
        """One-sided CUSUM of daily z over the run and today: sum of (z - allowance)."""
        return sum(z - self.elevated_z for z in run) + z_today - self.elevated_z

    def score_one(self, event: Event, profile: Profile) -> Finding | None:
        if event.action != "export" or event.outcome != "allowed":
            return None
        st = self.state_.get(event.principal_id)
        day = self._day(event)
        if st is None or st.base.n < self.min_history_days or st.fired_day == day:
            return None
        today = (st.today if st.day == day else 0.0) + event.records
        if today < self.min_daily_records:
            return None
        recent = st if st.day == day else self._closed_copy(st)
        run = self._run(recent)
        if len(run) < self.min_days - 1:
            return None
        z_today = st.base.z(math.log1p(today), self.std_floor)
        series = [*run, z_today]
        if (
            z_today < self.min_today_z
            or self._cusum(run, z_today) < self.threshold
            or kendall_s(series[-5:]) <= 0
        ):
            return None
        return self._finding(event, profile, st, today, series)

    def _closed_copy(self, st: _DayState) -> _DayState:
        """The state as it will be once the open day is closed (score_one must not mutate)."""
        copy = _DayState(st.day)
        copy.recent = array("b", st.recent)
        if st.base.n >= self.min_history_days and st.today > 0:
            copy.recent.append(self._z10(st, st.today))
        return copy

    def _z10(self, st: _DayState, total: float) -> int:
        return max(-127, min(127, round(10 * st.base.z(math.log1p(total), self.std_floor))))

    def _finding(self, event: Event, profile: Profile, st: _DayState, today: float, series: list[float]):
        usual = math.expm1(st.base.mean)
        peers = self.peers_.get(profile.peer_group)
        peer_usual = math.expm1(peers.mean) if peers is not None and peers.n else float("nan")
        days = len(series)
        return Finding(
            detector=self.name,
            event=event,
            score=sum(series) / math.sqrt(days),
            title=f"Export volume rising for {days} days",
            reasons=[
                f"{today:,.0f} records exported today; this principal's usual day is {usual:,.0f} "
                f"(z today {series[-1]:.1f})",
                f"daily export z-scores over the last {days} active days: "
                + ", ".join(f"{z:.1f}" for z in series),
                f"peers ({profile.peer_group}) usually export {peer_usual:,.0f} records a day",
            ],
            evidence_event_ids=[e for e in (st.first_event, event.event_id) if e],
            baseline={"usual_daily_records": round(usual), "days_elevated": days},
            # report-only by default until tuned: on 21-day simulated streams the daily baselines
            # are too young to separate a slow rise from ordinary variation (see the issue notes)
            max_severity=100.0 if self.page else 45.0,
        )

    def learn_one(self, event: Event, profile: Profile, flagged: bool = False) -> None:
        if not event.is_access or event.outcome != "allowed":
            return
        day = self._day(event)
        st = self.state_.get(event.principal_id)
        if st is None:
            st = self.state_[event.principal_id] = _DayState(day)
        if day > st.day:
            self._close_day(st, profile)
            st.day, st.today, st.first_event = day, 0.0, ""
        if flagged:
            st.fired_day = day
        if event.action == "export":  # downloads and shares move single objects, not result sets
            st.today += event.records
            if not st.first_event:
                st.first_event = event.event_id

    def _close_day(self, st: _DayState, profile: Profile) -> None:
        if st.today <= 0:
            return  # days without exports neither count in the baseline nor break a run
        x = math.log1p(st.today)
        if st.base.n >= self.min_history_days:
            z10 = self._z10(st, st.today)
            st.recent.append(z10)
            if len(st.recent) > HISTORY_DAYS:
                del st.recent[0]
            # clearly high days are not learned (anomalies are not normal); mildly high ones slowly,
            # so that a lasting change is eventually accepted
            if z10 < self.elevated_z * 10:
                st.base.update(x, self.alpha)
            elif z10 < self.min_today_z * 10:
                st.base.n += 1
                st.base.mean += self.alpha / 4 * (x - st.base.mean)
        else:
            st.base.update(x, self.alpha)
        peers = self.peers_.get(profile.peer_group)
        if peers is None:
            peers = self.peers_[profile.peer_group] = EW()
        peers.update(x, self.alpha / 4)

    def forget(self, principal_id: str) -> None:
        self.state_.pop(principal_id, None)

    def n_principals(self) -> int:
        return len(self.state_)
