"""Compact per-principal building blocks: stable 32-bit hashes, bounded seen-sets, distinct counts.

Per-principal state has a budget of about 2 KB across all detectors, so identifiers are kept as
32-bit CRCs (stable across processes, unlike ``hash``), packed in ``bytes`` and ``array`` objects
rather than held in sets.
"""

from __future__ import annotations

import math
import zlib
from array import array
from collections.abc import Iterable, Iterator
from typing import Any, Final

from mypy_extensions import mypyc_attr

_MEMO: Final[dict[str, int]] = {}
_MEMO_CAP: Final = 200_000  # a cache, not state: cleared when full, results never depend on it


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
        h = _MEMO[text] = _fibonacci(zlib.crc32(text.encode()))
    return h


def h32_once(text: str) -> int:
    """:func:`h32` without the memo, for values that rarely repeat (subject references)."""
    return _fibonacci(zlib.crc32(text.encode()))


def _fibonacci(crc: int) -> int:
    """``(crc * 0x9E3779B1) & 0xFFFFFFFF`` for a 32-bit ``crc``, from 16-bit halves of both factors.

    Compiled, a product is native only when both factors are below 2**30; otherwise it is a bignum
    multiply, then a bignum ``&`` (about 1,500 instructions). Mod 2**32, the product of the halves
    (h·2**16 + l)(H·2**16 + L) is l·L + ((h·L + l·H) mod 2**16)·2**16.

    >>> all(_fibonacci(x) == (x * 0x9E3779B1) & 0xFFFFFFFF for x in (0, 1, 0xFFFF, 0x10000, 0xFFFFFFFF))
    True
    """
    high, low = crc >> 16, crc & 0xFFFF
    return (low * 0x79B1 + (((high * 0x79B1 + low * 0x9E37) & 0xFFFF) << 16)) & 0xFFFFFFFF


def _salt(tag: int) -> int:
    """What :func:`tagged` mixes into a hash for namespace ``tag``."""
    return (tag * 0x5BD1E995) & 0xFFFFFFFF


#: :func:`_salt` of the small tags, precomputed: compiled, that product leaves the native ints
_SALTS: Final = tuple(_salt(tag) for tag in range(16))


def tagged(tag: int, text: str) -> int:
    """Hash of ``text`` in the namespace ``tag`` (a small int): one seen-set holds several fields.

    >>> tagged(1, "x") != tagged(2, "x")
    True
    """
    salt = _SALTS[tag] if 0 <= tag < 16 else _salt(tag)
    return h32(text) ^ salt


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


def find_key(keys: bytes, key: int, end: int = -1) -> int:
    """Position of the 32-bit ``key`` among ``keys`` (4 little-endian bytes each; the first ``end`` bytes
    only, when given), or -1. A key's other bytes are read only when its first one matches. Compiled,
    this reads ``bytes`` natively: ``key in array("I", ...)`` makes an int for each item it passes.

    >>> find_key((7).to_bytes(4, "little") + (1 << 20).to_bytes(4, "little"), 1 << 20), find_key(b"", 7)
    (1, -1)
    """
    first = key & 0xFF
    for j in range(0, len(keys) if end < 0 else end, 4):
        if keys[j] == first and keys[j + 1] | keys[j + 2] << 8 | keys[j + 3] << 16 == key >> 8:
            return j >> 2
    return -1


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)  # subclassed by per-principal records
class SeenSet:
    """A bounded set of 32-bit keys with the day each was last seen; when full, the key seen longest
    ago is evicted.

    One ``bytes`` object holds the keys, 4 little-endian bytes each, then their days, 2 bytes each (not
    two objects: 48 bytes less per set), replaced when they change (a new key, or a new day: rare).
    Compiled, reading a byte of ``bytes`` is a native operation; indexing an ``array`` creates an int
    object for every item read, and ``array.index`` and ``in`` create one for every item they pass. A
    principal's sets are read on every event (measured: a fifth of the engine's instructions went to
    seen-sets held in arrays, about 2,000 per key looked up). Pickled as ``(cap, keys, days)``.

    >>> s = SeenSet(cap=2)
    >>> s.add(1, day=10), s.add(1, day=11), s.add(2, day=11), s.add(3, day=12)
    (True, False, True, True)
    >>> 1 in s, 2 in s, 3 in s, list(s), s.last_day(3)
    (False, True, True, [3, 2], 12)
    """

    __slots__ = ("cap", "data", "size")

    def __init__(self, cap: int = 16) -> None:
        self.cap = cap
        self.data = b""
        self.size = 0  # keys held (their days start at byte 4 * size): kept, not computed per lookup

    def __contains__(self, key: int) -> bool:
        return self.find(key) >= 0

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[int]:
        return iter([self._key(i) for i in range(self.size)])

    def _key(self, i: int) -> int:
        keys, j = self.data, i << 2
        return keys[j] | keys[j + 1] << 8 | keys[j + 2] << 16 | keys[j + 3] << 24

    def _day(self, i: int) -> int:
        data, j = self.data, (self.size << 2) + (i << 1)
        return data[j] | data[j + 1] << 8

    def find(self, key: int) -> int:
        """Position of ``key``, or -1."""
        return find_key(self.data, key, self.size << 2)

    def last_day(self, key: int) -> int | None:
        i = self.find(key)
        return self._day(i) if i >= 0 else None

    def add(self, key: int, day: int) -> bool:
        """Record a sighting of ``key`` on ``day``; True when the key was new."""
        i = self.find(key)
        if i >= 0:
            self._seen(i, day)
            return False
        self._insert(key, day)
        return True

    def swap_day(self, key: int, day: int) -> int:
        """Record a sighting of ``key`` on ``day``; return the day it was last seen before (-1: new).

        >>> s = SeenSet()
        >>> s.swap_day(5, day=10), s.swap_day(5, day=12), s.last_day(5)
        (-1, 10, 12)
        """
        i = self.find(key)
        if i < 0:
            self._insert(key, day)
            return -1
        previous = self._day(i)
        if previous != day:
            self._set_day(i, day)
        return previous

    def items(self) -> list[tuple[int, int]]:
        """(key, day last seen) of every key."""
        return [(self._key(i), self._day(i)) for i in range(self.size)]

    def _insert(self, key: int, day: int) -> None:
        data, entry, n = self.data, key.to_bytes(4, "little"), self.size
        if n < self.cap:
            self.data = data[: n << 2] + entry + data[n << 2 :] + day.to_bytes(2, "little")
            self.size = n + 1
        else:
            j = self._oldest() << 2
            self.data = data[:j] + entry + data[j + 4 :]
            self._set_day(j >> 2, day)

    def _seen(self, i: int, day: int) -> None:
        if self._day(i) != day:
            self._set_day(i, day)

    def _set_day(self, i: int, day: int) -> None:
        data, j = self.data, (self.size << 2) + (i << 1)
        self.data = data[:j] + day.to_bytes(2, "little") + data[j + 2 :]

    def _oldest(self) -> int:
        """Position of the key seen longest ago (the first such)."""
        oldest, at = self._day(0), 0
        for i in range(1, self.size):
            day = self._day(i)
            if day < oldest:
                oldest, at = day, i
        return at

    def add_all(self, keys: Iterable[int | None], day: int) -> None:
        """:meth:`add` each key that is not None, in order (one call for a handful of keys)."""
        n, at = self.size, 0  # at: where the next key most likely sits, right after the
        # previous one (keys seen together were first added together); checking that slot is cheaper
        for key in keys:
            if key is None:
                continue
            if at < n and self._key(at) == key:
                i = at
            else:
                i = self.find(key)
                if i < 0:  # new: rare once a principal's context is known
                    self._insert(key, day)
                    n = self.size
                    continue
            self._seen(i, day)
            at = i + 1

    def __getstate__(self) -> Any:  # Any: the records that are seen-sets pickle as dicts
        data, k = self.data, self.size << 2
        return (self.cap, data[:k], data[k:])

    def __setstate__(self, state: tuple) -> None:
        if len(state) == 4:  # snapshot formats 2 and 3: keys, days and counts in three arrays
            self._restore(state[0], state[1], state[2])
        elif isinstance(state[1], array):  # format 4: keys, and day << 16 | count per key
            self._restore(state[0], state[1], [stamp >> 16 for stamp in state[2]])
        else:
            self._join(state[0], state[1], state[2])

    def _restore(self, cap: int, keys: Iterable[int], days: Iterable[int]) -> None:
        self._join(cap, b"".join([key.to_bytes(4, "little") for key in keys]),
                   b"".join([day.to_bytes(2, "little") for day in days]))

    def _join(self, cap: int, keys: bytes, days: bytes) -> None:
        if len(keys) != len(days) << 1:
            raise ValueError("a seen-set needs one day per key")
        self.cap, self.data, self.size = cap, keys + days, len(days) >> 1


def set_with_seen(record: SeenSet, state: Any) -> None:
    """Unpickle a record that is a :class:`SeenSet` with attributes of its own: ``state`` names them
    and ``seen`` (the set's state, or a whole SeenSet as when the record held one)."""
    values = dict(state[1] if isinstance(state, tuple) else state)
    seen = values.pop("seen")
    SeenSet.__setstate__(record, seen.__getstate__() if isinstance(seen, SeenSet) else seen)
    restore_slots(record, values)


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)  # subclassed by subjects' windows
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

    @staticmethod
    def pooled(parts: list[EW]) -> EW:
        """Several partitions' statistics of one quantity as one (a part alone: itself): the mean and variance
        of the pooled samples, each part weighted by its count. A pooled *approximation*: each part
        forgets exponentially at its own pace, which counts do not weigh."""
        if len(parts) == 1:
            return parts[0]
        pooled, n = EW(), sum([part.n for part in parts])
        if n:
            mean = sum([part.n * part.mean for part in parts]) / n
            pooled.n, pooled.mean = n, mean
            pooled.var = sum([part.n * (part.var + (part.mean - mean) ** 2) for part in parts]) / n
        return pooled

    def __getstate__(self) -> tuple:
        return (self.mean, self.var, self.n)

    def __setstate__(self, state: tuple) -> None:
        self.mean, self.var, self.n = state


def pooled_get(table: dict[Any, EW], others: tuple[Any, ...], key: Any, index: int = -1) -> EW | None:
    """``table[key]`` pooled with the other partitions' (each partial is such a table, or holds one at
    ``index``): :meth:`EW.pooled`; ``table[key]`` alone when no other partition is in view."""
    mine = table.get(key)
    if not others:
        return mine
    found = [] if mine is None else [mine]
    for part in others:
        theirs = (part if index < 0 else part[index]).get(key)
        if theirs is not None:
            found.append(theirs)
    return EW.pooled(found) if found else None
