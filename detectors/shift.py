"""Hourly activity of a scope (the organisation, a department) and its shift monitor: the hourly
counts' residuals against an hour-of-day x weekday/weekend baseline, fed to River's Page-Hinkley.
Used by :mod:`detectors.drift`."""

from __future__ import annotations

import math
from typing import Any

from mypy_extensions import mypyc_attr
from river import drift

from detectors.compact import DistinctCounter, restore_slots, slot_state
from detectors.days import DAY_S, HOUR_S, is_weekend

#: ShiftMonitor's attributes (its ``__slots__``; also what its pickled state names)
_SHIFT_MONITOR_SLOTS = ("alpha", "base", "detector", "threshold", "n")


class ShiftMonitor:
    """Hourly counts → seasonal residuals → Page-Hinkley (upward shifts only).

    >>> import random
    >>> rng, m = random.Random(1), ShiftMonitor()
    >>> hits = [h for h in range(24 * 28) if m.update(h * 3600.0, rng.gauss(100 if h < 24 * 21 else 400, 10))]
    >>> len(hits) > 0 and min(hits) >= 24 * 21
    True
    """

    __slots__ = _SHIFT_MONITOR_SLOTS

    def __init__(self, alpha: float = 0.1, threshold: float = 6.0) -> None:
        self.alpha = alpha
        self.threshold = threshold
        self.base = [math.nan] * 48
        self.detector = drift.PageHinkley(min_instances=48, delta=0.1, threshold=threshold, mode="up")
        self.n = 0

    def __getstate__(self) -> dict[str, Any]:
        return slot_state(self, _SHIFT_MONITOR_SLOTS)

    def __setstate__(self, state: Any) -> None:
        restore_slots(self, state)

    @staticmethod
    def _slot(hour_start: float) -> int:
        return int(hour_start // HOUR_S) % 24 + (24 if is_weekend(hour_start, 0) else 0)

    def usual(self, hour_start: float) -> float:
        """The usual count for the hour-of-day (weekday or weekend) of ``hour_start``; 0 before any."""
        base = self.base[self._slot(hour_start)]
        return 0.0 if math.isnan(base) else math.expm1(base)

    def update(self, hour_start: float, count: float) -> bool:
        """Feed one closed hour; True when an upward shift is detected."""
        slot = self._slot(hour_start)
        x = math.log1p(count)
        base = self.base[slot]
        self.n += 1
        if math.isnan(base):
            self.base[slot] = x
            return False
        residual = x - base
        # the baseline adapts slowly; the detector sees the residual against it
        self.base[slot] = base + self.alpha * min(residual, 0.5)
        self.detector.update(residual)
        return bool(self.detector.drift_detected)


#: Hour's attributes (its ``__slots__``; also what its pickled state names)
HOUR_SLOTS = ("start", "events", "day", "active", "prev_start", "prev_events")


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)  # see detectors/native.py
class Hour:
    __slots__ = HOUR_SLOTS

    def __init__(self, start: float) -> None:
        self.start = start
        self.events = 0
        self.day = start - start % DAY_S
        self.active = DistinctCounter()  # distinct principals active today
        #: the hour closed last and its events: what other partitions add up when they close that hour
        self.prev_start = -1.0
        self.prev_events = 0

    def __getstate__(self) -> dict[str, Any]:
        return slot_state(self, HOUR_SLOTS)

    def __setstate__(self, state: Any) -> None:
        self.prev_start, self.prev_events = -1.0, 0  # state written before partitions shared hours
        restore_slots(self, state)

    def events_in(self, start: float) -> int:
        """This scope's events in the hour from ``start``, if it is the current or the last closed hour."""
        if start == self.start:
            return self.events
        return self.prev_events if start == self.prev_start else 0
