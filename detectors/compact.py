"""Compact per-principal building blocks: stable 32-bit hashes, bounded seen-sets, distinct counts.

Per-principal state has a budget of about 2 KB across all detectors, so identifiers are kept as
32-bit CRCs (stable across processes, unlike ``hash``), in ``array`` objects rather than sets.
"""

from __future__ import annotations

import math
import zlib
from array import array
from collections.abc import Iterable
from typing import Any, Final

DAY_S: Final = 86_400.0
HOUR_S: Final = 3_600.0


_MEMO: dict[str, int] = {}
_MEMO_CAP = 200_000  # a cache, not state: cleared when full, results never depend on it


def h32(text: str) -> int:
    """Stable 32-bit hash of a string: CRC-32, then a Fibonacci multiply so that the high bits
    are well mixed even for near-identical strings (CRC is linear). Memoised: the same countries,
    devices and resources come back all the time.

    >>> h32("GB") == h32("GB"), h32("GB") == h32("US")
    (True, False)
    """
    h = _MEMO.get(text)
    if h is None:
        if len(_MEMO) >= _MEMO_CAP:
            _MEMO.clear()
        h = _MEMO[text] = (zlib.crc32(text.encode()) * 0x9E3779B1) & 0xFFFFFFFF
    return h


def h32_once(text: str) -> int:
    """:func:`h32` without the memo, for values that rarely repeat (subject references)."""
    return (zlib.crc32(text.encode()) * 0x9E3779B1) & 0xFFFFFFFF


def tagged(tag: int, text: str) -> int:
    """Hash of ``text`` in the namespace ``tag`` (a small int): one seen-set holds several fields.

    >>> tagged(1, "x") != tagged(2, "x")
    True
    """
    return h32(text) ^ (tag * 0x5BD1E995 & 0xFFFFFFFF)


def day_number(ts: float) -> int:
    """Days since the epoch, as stored in 16-bit last-seen fields (good until the year 2149)."""
    return int(ts // DAY_S) & 0xFFFF


def local_hour(ts: float, tz_offset_s: int) -> int:
    return int((ts + tz_offset_s) // HOUR_S) % 24


def ip_prefix(ip: str | None) -> str | None:
    """The /24 of an IPv4 address (the /48 of IPv6): a network, not one lease.

    >>> ip_prefix("10.1.20.7"), ip_prefix(None)
    ('10.1.20', None)
    """
    if not ip:
        return None
    if ":" in ip:
        return ":".join(ip.split(":")[:3])
    return ip.rsplit(".", 1)[0]


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


def slot_state(obj: object, names: tuple[str, ...]) -> dict[str, Any]:
    """The pickled state of a small ``__slots__`` class, by attribute name (see :func:`restore_slots`)."""
    return {name: getattr(obj, name) for name in names}


def restore_slots(obj: object, state: Any) -> None:
    """Set a ``__slots__`` class's attributes from :func:`slot_state`'s dict, or from the
    ``(None, {name: value})`` pair that plain Python pickles such a class as by default (snapshots
    written before these classes had their own state methods). The same state for the compiled and
    the pure build (compiled classes have no ``__slots__`` for pickle to read)."""
    for name, value in (state[1] if isinstance(state, tuple) else state).items():
        setattr(obj, name, value)


def _seen_again(stamp: int, day: int) -> int:
    """A :class:`SeenSet` stamp (``day << 16 | count``) after one more sighting on ``day``."""
    count = stamp & 0xFFFF
    return day << 16 | (count + 1 if count < 0xFFFF else count)


class SeenSet:
    """A bounded set of 32-bit keys with a hit count and last-seen day each; when full, the least
    recently seen key is evicted.

    Day and count share one 32-bit ``stamps`` entry per key (``day << 16 | count``, the count
    saturating at 0xFFFF): one ``array("I")`` item read and write per sighting. ``array("H")`` item
    assignment goes through ``PyArg_Parse``, about four times the instructions of ``"I"``'s.

    >>> s = SeenSet(cap=2)
    >>> s.add(1, day=10), s.add(1, day=11), s.add(2, day=11), s.add(3, day=12)
    (True, False, True, True)
    >>> 1 in s, 2 in s, 3 in s, s.count(2)
    (False, True, True, 1)
    """

    __slots__ = ("cap", "keys", "stamps")

    def __init__(self, cap: int = 16) -> None:
        self.cap = cap
        self.keys = array("I")
        self.stamps = array("I")

    def __contains__(self, key: int) -> bool:
        return key in self.keys

    def __len__(self) -> int:
        return len(self.keys)

    def count(self, key: int) -> int:
        try:
            return self.stamps[self.keys.index(key)] & 0xFFFF
        except ValueError:
            return 0

    def add(self, key: int, day: int) -> bool:
        """Record one sighting of ``key`` on ``day``; True when the key was new."""
        keys, stamps = self.keys, self.stamps
        try:
            i = keys.index(key)
        except ValueError:
            if len(keys) < self.cap:
                keys.append(key)
                stamps.append(day << 16 | 1)
            else:
                i = self._oldest()
                keys[i] = key
                stamps[i] = day << 16 | 1
            return True
        stamps[i] = _seen_again(stamps[i], day)
        return False

    def _oldest(self) -> int:
        """Position of the key seen longest ago (the first such)."""
        stamps = self.stamps
        oldest, at = stamps[0] >> 16, 0
        for i in range(1, len(stamps)):
            day = stamps[i] >> 16
            if day < oldest:
                oldest, at = day, i
        return at

    def add_all(self, keys: Iterable[int | None], day: int) -> None:
        """:meth:`add` each key that is not None, in order (one call for a handful of keys)."""
        own, stamps = self.keys, self.stamps
        at = 0  # where the next key most likely sits: right after the previous one (keys seen together
        # were first added together); checking that one slot is far cheaper than array.index
        for key in keys:
            if key is None:
                continue
            if at < len(own) and own[at] == key:
                i = at
            else:
                try:
                    i = own.index(key)
                except ValueError:  # new: rare once a principal's context is known
                    self.add(key, day)
                    continue
            stamps[i] = _seen_again(stamps[i], day)
            at = i + 1

    def __getstate__(self) -> tuple:
        return (self.cap, self.keys, self.stamps)

    def __setstate__(self, state: tuple) -> None:
        if len(state) == 4:  # snapshot formats 2 and 3: separate day and count arrays
            self.cap, self.keys, last, counts = state
            self.stamps = array("I", [d << 16 | c for d, c in zip(last, counts, strict=True)])
        else:
            self.cap, self.keys, self.stamps = state


class DistinctCounter:
    """Linear counting (Whang, Vander-Zanden & Taylor, 1990) over a 512-bit bitmap: 64 bytes,
    a few percent error up to ~500 distinct items, still clearly "many" up to ~2,500.

    >>> c = DistinctCounter()
    >>> for i in range(300):
    ...     _ = c.add(h32(f"s-{i}"))
    >>> 250 < c.estimate() < 350
    True
    """

    __slots__ = ("bits", "ones")
    M: Final = 512
    SHIFT: Final = 23  # position = the top 9 bits of an :func:`h32` hash

    def __init__(self) -> None:
        self.bits = bytearray(self.M // 8)
        self.ones = 0

    def is_new(self, key: int) -> bool:
        pos = key >> self.SHIFT
        return not self.bits[pos >> 3] & (1 << (pos & 7))

    def add(self, key: int) -> bool:
        pos = key >> self.SHIFT
        mask = 1 << (pos & 7)
        if self.bits[pos >> 3] & mask:
            return False
        self.bits[pos >> 3] |= mask
        self.ones += 1
        return True

    def estimate(self, extra_ones: int = 0) -> float:
        zeros = max(self.M - self.ones - extra_ones, 0.5)
        return -self.M * math.log(zeros / self.M)

    def clear(self) -> None:
        self.bits = bytearray(self.M // 8)
        self.ones = 0

    def __getstate__(self) -> tuple:
        return (bytes(self.bits), self.ones)

    def __setstate__(self, state: tuple) -> None:
        self.bits, self.ones = bytearray(state[0]), state[1]


class EW:
    """Exponentially weighted mean and variance in three floats, with helpers used by detectors.

    >>> s = EW()
    >>> for x in (1.0, 2.0, 1.0, 2.0):
    ...     s.update(x, 0.5)
    >>> s.n, round(s.mean, 2)
    (4, 1.62)
    """

    __slots__ = ("mean", "var", "n")

    def __init__(self) -> None:
        self.mean = 0.0
        self.var = 0.0
        self.n = 0

    def update(self, x: float, alpha: float) -> None:
        n = self.n = self.n + 1
        if n == 1:
            self.mean = x
            return
        # max(alpha, 1 / n): plain average while young, then exponential forgetting
        a = 1.0 / n
        if not a > alpha:  # exactly what max() picks, NaN included
            a = alpha
        mean = self.mean
        diff = x - mean
        incr = a * diff
        self.mean = mean + incr
        self.var = (1.0 - a) * (self.var + diff * incr)

    def z(self, x: float, floor: float) -> float:
        return (x - self.mean) / max(math.sqrt(self.var), floor)

    def upper(self, k: float = 2.0) -> float:
        """``mean + k·std``: the top of the usual range."""
        return self.mean + k * math.sqrt(self.var)

    def __getstate__(self) -> tuple:
        return (self.mean, self.var, self.n)

    def __setstate__(self, state: tuple) -> None:
        self.mean, self.var, self.n = state


def is_admin(
    role: str | None, department: str | None, admin_roles: tuple[str, ...], admin_departments: tuple[str, ...]
) -> bool:
    """Whether an actor may hand out permissions (configurable roles and departments)."""
    return (role in admin_roles) or (department in admin_departments)
