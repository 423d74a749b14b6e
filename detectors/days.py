"""Days and hours of event time: day numbers, local hours, weekends (no state, no wall clock)."""

from __future__ import annotations

from typing import Final

DAY_S: Final = 86_400.0
HOUR_S: Final = 3_600.0


def day_number(ts: float) -> int:
    """Days since the epoch, as stored in 16-bit last-seen fields (good until the year 2149)."""
    return int(ts // DAY_S) & 0xFFFF


def local_hour(ts: float, tz_offset_s: int) -> int:
    return int((ts + tz_offset_s) // HOUR_S) % 24


def is_weekend_day(day: int) -> bool:
    """Whether day number ``day`` (days since the epoch) is a Saturday or Sunday."""
    # 1970-01-01 was a Thursday: day 0 -> weekday 3 (Monday = 0)
    return (day + 3) % 7 >= 5


def is_weekend(ts: float, tz_offset_s: int) -> bool:
    return is_weekend_day(int((ts + tz_offset_s) // DAY_S))


def weekend_days_between(first: int, end: int) -> int:
    """Weekend days in ``[first, end)``.

    >>> weekend_days_between(0, 7), weekend_days_between(2, 4), weekend_days_between(5, 5)
    (2, 2, 0)
    """
    weeks, rest = divmod(max(0, end - first), 7)
    return 2 * weeks + sum(is_weekend_day(first + 7 * weeks + i) for i in range(rest))
