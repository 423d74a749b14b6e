"""Slow exfiltration: day after day, a principal exports more than its own work explains.

No single export has to stand out. Three channels, each about exports relative to the principal's
*other* activity, so that a busy day or a quarter-end surge, in which everything grows together, is unremarkable:

- **A daily surplus, accumulated.** The usual export share (exponentially weighted exports and other
  accesses per active day) gives today's expected exports; the surplus, a variance-stabilised Poisson
  deviation (Anscombe: ``z = 2·(√(c + 3/8) − √(e + 3/8))``), accumulates in a one-sided CUSUM (Page,
  1954): ``S = max(0, S + z − k)``. A finding needs the CUSUM over ``threshold``, ``min_days`` days in
  the run, today's surplus ``min_today_z``, ``min_today_exports`` exports today, and today's exported
  records ``min_daily_records`` and ``min_records_ratio`` times a usual day's. One finding a run.
- **A moderate exporter's steady extra** (:class:`~detectors.export_window.ExportWindow`): the export
  share of the last ``window_days`` active days tested against the share of all the days before
  them (a two-proportion z-test, calibrated however short the history): ``window_z`` and
  ``window_min_extra`` exports beyond what the history's share predicts, for a principal that
  exported ``window_min_rate`` times a day before. One or two extra exports a day stay inside each
  day's noise; over a week they do not.
- **Days off:** a principal that does not work weekends (active on at most ``off_day_rate`` of the
  weekend days since first seen) exporting one table and doing nothing else on weekend days,
  ``off_day_exports`` exports over consecutive such days, pages at ``off_day_severity``.

The first two also need the recent exports to concentrate on one table more than before
(:class:`~detectors.export_mix.ExportMix`: the top table's share of the last four active days'
exports ``min_lift`` above its share before): siphoning takes one dataset, a busy stretch keeps the
usual mix. A principal that only ever exports one table cannot concentrate further: the rule is
waived when its latest days off held ``off_day_lift_waiver`` exports of the table and nothing else,
and (steady extra) when the top table already held all but ``min_lift`` of its exports. Days off page,
runs from a cumulative surplus of ``run_page_score``, steady extras never (``window_severity``): what
was measured for each rule is in the runbook (``docs/runbooks/slow_exfiltration.md``).

Per principal: fifteen numbers, an :class:`ExportMix` once it exports, an :class:`ExportWindow`.
"""
from __future__ import annotations

import math

from mypy_extensions import mypyc_attr

from detectors.base import Detector, Finding, Profile
from detectors.days import DAY_S, is_weekend_day, weekend_days_between
from detectors.events import Event
from detectors.export_mix import NO_EXPORTS, ExportMix
from detectors.export_window import ExportWindow, anscombe_z, steady_extra_finding

#: _DayState's attributes, in the order its pickled state lists them (compiled classes have no ``__slots__``)
_DAY_STATE = ("day", "exports", "others", "records", "first_event", "ew_exports", "ew_others", "ew_records",
              "ew_z2", "days", "cusum", "run", "run_first", "fired_day", "mix", "weekend_days", "off_day",
              "off_count", "off_resource", "window")


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)  # see detectors/native.py
class _DayState:
    __slots__ = _DAY_STATE

    def __init__(self, day: int, window_days: int = 5) -> None:
        self.day = day
        self.exports = 0  # today so far
        self.others = 0
        self.records = 0.0
        self.first_event = ""
        self.ew_exports = 0.0  # usual exports per active day
        self.ew_others = 0.0  # usual other accesses per active day
        self.ew_records = 0.0  # usual exported records per active day
        self.ew_z2 = 1.0  # usual squared daily surplus: overdispersion beyond Poisson
        self.days = 0  # closed active days learned
        self.cusum = 0.0
        self.run = 0  # consecutive active days with a positive CUSUM
        self.run_first = ""
        self.fired_day = -1
        self.mix = NO_EXPORTS  # its own from its first export on: most principals rarely export
        self.weekend_days = 0  # closed active weekend days (local Saturday or Sunday)
        self.off_day = -1  # the last closed weekend day with exports of one table and nothing else
        self.off_count = 0  # its exports, plus those of such days straight before it
        self.off_resource = ""
        self.window = ExportWindow(window_days)

    def __getstate__(self) -> tuple:
        return tuple(getattr(self, name) for name in _DAY_STATE)

    def __setstate__(self, state: tuple) -> None:
        for name, value in zip(_DAY_STATE, state, strict=True):
            setattr(self, name, value)
        self.mix = self.mix if self.mix.resources else NO_EXPORTS

    def expected(self, others: int, floor: float = 1.0) -> float:
        """Exports expected for a day with ``others`` other accesses, at this principal's usual
        share, counting at least ``floor`` of a usual day's other accesses: a day in progress
        (floor 1) has not done its other work yet; a closed day's own count is nearer the truth."""
        share = self.ew_exports / max(self.ew_others, 1.0)
        return share * max(others, self.ew_others * floor)


class SlowExfiltration(Detector):
    """Flags a principal whose exports exceed what its own activity explains, several days running.

    >>> from detectors.base import Profile
    >>> d, p = SlowExfiltration(), Profile(first_ts=0.0, last_ts=0.0)
    >>> def day(n, exports, others=20, usual_mix=False):
    ...     found = None
    ...     for i in range(others + exports):
    ...         action = "export" if i % 3 == 0 and i // 3 < exports else "read"
    ...         usual = ("t.a", "t.b")[(n + i // 3) % 2]  # the usual exports alternate between two tables
    ...         table = usual if i < 3 or usual_mix else "t.siphoned"  # the extras are of one table
    ...         e = Event(kind="access", event_id=f"e{n}-{i}", ts=n * 86_400 + 30_000 + i * 600, principal_id="u",
    ...                   action=action, resource_id=table, records=800 if action == "export" else 2)
    ...         f = d.score_one(e, p)
    ...         d.learn_one(e, p, flagged=f is not None)
    ...         found = found or f
    ...     return found is not None
    >>> [day(n, 1) for n in range(14)].count(True)
    0
    >>> [day(14 + n, 2 + n) for n in range(6)]  # one finding for the run, not one a day
    [False, False, False, False, True, False]

    The same extra exports in the principal's usual mix of tables are a busy stretch:

    >>> d = SlowExfiltration()
    >>> [day(n, 1) for n in range(14)].count(True), [day(14 + n, 2 + n, usual_mix=True) for n in range(6)]
    (0, [False, False, False, False, False, False])
    """

    name = "slow_exfiltration"
    per_principal = ("state_",)
    state_version = 3  # arrays pickled as bytes (2: as arrays, loads as 3 does; 1: before issue 31)
    loads_from_version = 2
    event_kinds = frozenset({"access"})
    shift_sensitive = True

    def __init__(
        self,
        alpha: float = 0.1,
        allowance: float = 0.75,
        threshold: float = 5.0,
        min_days: int = 3,
        min_today_z: float = 1.5,
        min_today_exports: int = 4,
        closed_floor: float = 0.5,
        min_history_days: int = 5,
        min_lift: float = 0.1,
        min_daily_records: int = 500,
        min_records_ratio: float = 2.0,
        max_day_z: float = 3.0,
        learn_z: float = 1.75,
        off_day_exports: int = 4,
        off_day_rate: float = 0.25,
        off_day_severity: float = 60.0,
        off_day_lift_waiver: int = 2,
        window_days: int = 5,
        window_z: float = 3.5,
        window_min_extra: float = 4.0,
        window_min_rate: float = 0.5,
        run_page_score: float = 8.0,
        window_severity: float = 45.0,
        page: bool = True,
    ):
        self.alpha = alpha
        self.allowance = allowance
        self.threshold = threshold
        self.min_days = min_days
        self.min_today_z = min_today_z
        self.min_today_exports = min_today_exports
        self.closed_floor = closed_floor
        self.min_history_days = min_history_days
        self.min_lift = min_lift
        self.min_daily_records = min_daily_records
        self.min_records_ratio = min_records_ratio
        self.max_day_z = max_day_z
        self.learn_z = learn_z
        self.off_day_exports = off_day_exports
        self.off_day_rate = off_day_rate
        self.off_day_severity = off_day_severity
        self.off_day_lift_waiver = off_day_lift_waiver
        self.window_days = window_days
        self.window_z = window_z
        self.window_min_extra = window_min_extra
        self.window_min_rate = window_min_rate
        self.run_page_score = run_page_score
        self.window_severity = window_severity
        self.page = page
        self.state_: dict[str, _DayState] = {}

    @staticmethod
    def _day(event: Event) -> int:
        return int((event.ts + event.tz_offset_s) // DAY_S)

    def score_one(self, event: Event, profile: Profile) -> Finding | None:
        if event.action != "export" or event.outcome != "allowed":
            return None
        st = self.state_.get(event.principal_id)
        if st is None or st.days < self.min_history_days:
            return None
        day = self._day(event)
        # one finding per run: quiet until the CUSUM has returned to 0
        found = self._run_finding(event, profile, st, day) if st.fired_day < 0 else None
        return found if found is not None else self._steady_extra(event, st, day)

    def _run_finding(self, event: Event, profile: Profile, st: _DayState, day: int) -> Finding | None:
        if is_weekend_day(day) and (found := self._off_day(event, profile, st, day)) is not None:
            return found
        if st.day == day:
            exports, others, records = st.exports + 1, st.others, st.records + event.records
            cusum, run = st.cusum, st.run
        else:  # the first event of a new day: close the open one in a copy
            exports, others, records = 1, 0, float(event.records)
            cusum, run = self._closed(st)
        if exports < self.min_today_exports or records < max(self.min_daily_records,
                                                               self.min_records_ratio * st.ew_records):
            return None
        expected = st.expected(others)
        z_today = self._scaled(st, anscombe_z(exports, expected))
        total = cusum + z_today - self.allowance
        days = run + 1
        if z_today < self.min_today_z or total < self.threshold or days < self.min_days:
            return None
        recent, before, top, n_top, n_all = st.mix.concentration(event.resource_id, new_day=day > st.day)
        if recent - before < self.min_lift and not self._taken_on_days_off(st, event.resource_id, day):
            return None  # more of the usual mix: a busy stretch, not one dataset siphoned
        usual_records = st.ew_records
        share = st.ew_exports / max(st.ew_exports + st.ew_others, 1e-9)
        pages = self.page and total >= self.run_page_score
        return Finding(
            detector=self.name,
            event=event,
            score=total,
            title=f"Exports out of proportion to activity for {days} days",
            reasons=[
                f"{exports} exports ({records:,.0f} records) today after {others} other accesses; this "
                f"principal's usual export share ({share:.1%}) predicts {expected:.1f} "
                f"(surplus z={z_today:.1f}); usual exported records per day {usual_records:,.0f}",
                f"cumulative surplus (CUSUM, allowance {self.allowance}) over the last {days} active days: "
                f"{total:.1f} (threshold {self.threshold})",
                f"{n_top} of the {n_all} exports in the last {ExportMix.RECENT} active days were of {top} "
                f"({recent:.0%}; {before:.0%} of this principal's exports before)",
                *([] if pages else [f"reported, not paged: runs page from a surplus of {self.run_page_score}"]),
            ],
            evidence_event_ids=[e for e in dict.fromkeys((st.run_first, st.first_event, event.event_id)) if e],
            baseline={
                "usual_exports_per_day": round(st.ew_exports, 2),
                "usual_export_share": round(share, 4),
                "usual_daily_records": round(usual_records),
                "days_elevated": days,
                "top_resource_share": round(recent, 3),
                "top_resource_share_before": round(before, 3),
            },
            resource_ids=[top],
            max_severity=100.0 if pages else 45.0,
        )

    def _steady_extra(self, event: Event, st: _DayState, day: int) -> Finding | None:
        """The export share of the last ``window_days`` active days against the history before them."""
        w = st.window
        if w.held or w.hist_days < self.min_history_days or w.hist_exports < self.window_min_rate * w.hist_days:
            return None  # a principal that hardly exported before has no usual share to test against
        # on a new day the open one has not joined the window yet: its counts go with today's
        z, extra = w.test(st.exports + 1, st.others)
        today = st.day == day
        if z < self.window_z or extra < self.window_min_extra:
            return None
        recent, before, top, n_top, n_all = st.mix.concentration(event.resource_id, new_day=not today)
        if recent - before < self.min_lift and before < 1.0 - self.min_lift \
                and not self._taken_on_days_off(st, top, day):
            return None  # the usual mix (a table that held all but min_lift of its exports cannot concentrate)
        return steady_extra_finding(self.name, event, w, z, extra, (recent, before, top, n_top, n_all),
                                    [e for e in dict.fromkeys((st.first_event, event.event_id)) if e],
                                    self.window_z, min(self.window_severity, 100.0 if self.page else 45.0))

    def _taken_on_days_off(self, st: _DayState, resource_id: str, day: int) -> bool:
        """Whether the principal's latest days off (within the last week) held at least
        ``off_day_lift_waiver`` exports of this table and nothing else (0: never)."""
        return (0 < self.off_day_lift_waiver <= st.off_count and st.off_resource == resource_id
                and day - st.off_day <= 7)

    def _off_day(self, event: Event, profile: Profile, st: _DayState, day: int) -> Finding | None:
        """Exports of one table and nothing else on weekend days of a principal that does not work
        weekends, counted over consecutive such days."""
        today = st.day == day
        exports, others = (st.exports + 1, st.others) if today else (1, 0)
        if others:
            return None
        if (st.mix.today(event.resource_id) if today else 0) + 1 < exports:
            return None  # exports of several tables: not one dataset taken
        off_day, off_count, off_resource = (st.off_day, st.off_count, st.off_resource) if today \
            else self._off_chain(st)
        carried = off_count if off_day == day - 1 and off_resource == event.resource_id else 0
        if carried + exports < self.off_day_exports:
            return None
        first = int((profile.first_ts + event.tz_offset_s) // DAY_S)
        weekends = weekend_days_between(first, day)
        worked = st.weekend_days + (1 if st.day < day and is_weekend_day(st.day) else 0)
        if weekends < 2 or worked - (1 if carried else 0) > self.off_day_rate * weekends:
            return None
        records = (st.records if today else 0.0) + event.records
        if records < self.min_daily_records:
            return None
        return Finding(
            detector=self.name,
            event=event,
            score=self.threshold + carried + exports,
            title=f"{carried + exports} exports of one table on days off, and nothing else",
            reasons=[
                f"{exports} exports of {event.resource_id} ({records:,.0f} records) today, a weekend day, "
                f"with no other activity" + (f", after {carried} the day before" if carried else ""),
                f"active on {worked} of the {weekends} weekend days since first seen; "
                f"usually {st.ew_exports:.1f} exports among {st.ew_others:.0f} other accesses a working day",
            ],
            evidence_event_ids=[e for e in dict.fromkeys((st.first_event if today else "",
                                                           event.event_id)) if e],
            baseline={
                "weekend_days_active": worked,
                "weekend_days_seen": weekends,
                "usual_exports_per_day": round(st.ew_exports, 2),
            },
            resource_ids=[event.resource_id],
            max_severity=self.off_day_severity if self.page else 45.0,
        )

    def _scaled(self, st: _DayState, z: float) -> float:
        """Surplus in units of this principal's own day-to-day spread (at least Poisson's), capped."""
        return min(z / max(1.0, math.sqrt(st.ew_z2)), self.max_day_z)

    def _day_z(self, st: _DayState) -> float:
        return self._scaled(st, anscombe_z(st.exports, st.expected(st.others, self.closed_floor)))

    def _closed(self, st: _DayState) -> tuple[float, int]:
        """(CUSUM, run length) once the open day is closed (without changing ``st``)."""
        if st.exports + st.others == 0 or st.days < self.min_history_days:
            return st.cusum, st.run
        cusum = max(0.0, st.cusum + self._day_z(st) - self.allowance)
        return cusum, (st.run + 1 if cusum > 0 else 0)

    def learn_one(self, event: Event, profile: Profile, flagged: bool = False) -> None:
        if event.outcome != "allowed":
            return
        day = self._day(event)
        st = self.state_.get(event.principal_id)
        if st is None:
            st = self.state_[event.principal_id] = _DayState(day, self.window_days)
        if day > st.day:
            if is_weekend_day(st.day) and st.exports + st.others:
                st.weekend_days += 1
            st.off_day, st.off_count, st.off_resource = self._off_chain(st)
            self._close_day(st)
            st.mix.close_day()
            st.day, st.exports, st.others, st.records, st.first_event = day, 0, 0, 0.0, ""
        if flagged:
            st.fired_day = day
            st.window.held = True
        if event.action == "export":
            st.mix = ExportMix() if st.mix is NO_EXPORTS else st.mix
            st.mix.add(event.resource_id)
            st.exports += 1
            st.records += event.records
            if not st.first_event:
                st.first_event = event.event_id
        else:
            st.others += 1

    @staticmethod
    def _off_chain(st: _DayState) -> tuple[int, int, str]:
        """(off_day, off_count, off_resource) once the open day is closed (without changing ``st``):
        a weekend day of exports of one table and nothing else extends the chain of such days."""
        if not is_weekend_day(st.day) or st.others or not st.exports:
            return st.off_day, st.off_count, st.off_resource
        top = st.mix.only_today()
        if not top:
            return st.off_day, st.off_count, st.off_resource
        chained = st.off_day == st.day - 1 and st.off_resource == top
        return st.day, (st.off_count if chained else 0) + st.exports, top

    def _close_day(self, st: _DayState) -> None:
        if st.exports + st.others == 0:
            return
        st.window.close_day(st.exports, st.others)
        if st.window.held and st.window.test(0, 0)[0] < self.window_z - 1.0:
            st.window.held = False  # the steady extra is over: the next one is a new finding
        raw = anscombe_z(st.exports, st.expected(st.others, self.closed_floor)) if st.days >= 2 else 0.0
        z = self._day_z(st) if st.days >= self.min_history_days else 0.0
        if st.days >= self.min_history_days:
            prev = st.cusum
            st.cusum, st.run = self._closed(st)
            if st.cusum > 0 and prev == 0:
                st.run_first = st.first_event
            elif st.cusum == 0:
                st.run_first = ""
                st.fired_day = -1
        # surplus days are not learned as normal; mild ones slowly, so a lasting change is accepted
        if z < self.learn_z:
            a = max(self.alpha, 1.0 / (st.days + 1)) * (1.0 if z < self.allowance else 0.25)
            st.ew_exports += a * (st.exports - st.ew_exports)
            st.ew_others += a * (st.others - st.ew_others)
            st.ew_records += a * (st.records - st.ew_records)
            if st.days >= 2:
                st.ew_z2 += a * (raw * raw - st.ew_z2)
            st.days += 1

    def forget(self, principal_id: str) -> None:
        self.state_.pop(principal_id, None)

    def n_principals(self) -> int:
        return len(self.state_)
