"""Peer-group aggregates: how many distinct members of a group touched an item lately, and how many
members the group has. Kept apart from per-principal state and mergeable (plain sums), so that the
groups can be made global across partitions by adding up each engine's partial aggregates: a
principal lives in exactly one partition, so its touches are counted once.

Touches are bucketed by the week of each member's *latest* touch: when a member touches an item
again in a later week, its count moves from the old week's bucket to the new one, so the buckets of
the last ``weeks`` weeks add up to the distinct members that touched the item within that window.
"""

from __future__ import annotations

from typing import Any, Final

from mypy_extensions import mypyc_attr

WEEK_DAYS: Final = 7


@mypyc_attr(allow_interpreted_subclasses=True)
class View:
    """The other partitions' partials of one detector (what their :meth:`Detector.partial` returned),
    read only: set by :meth:`detectors.engine.Engine.view`. Empty for one engine, so a detector's query
    costs one test of :attr:`parts` more. Pickles empty: a view is never persisted (whole-engine
    snapshots pickle detectors with their attributes), it is given again after a restore.

    >>> import copy  # as pickle would, through __getstate__ and __setstate__
    >>> copy.copy(View((1, 2))).parts
    ()
    """

    def __init__(self, parts: tuple[Any, ...] = ()) -> None:
        self.parts = parts

    def __getstate__(self) -> tuple:
        return ((),)

    def __setstate__(self, state: tuple) -> None:
        self.parts = ()


@mypyc_attr(allow_interpreted_subclasses=True)
class PeerTouches:
    """Per group key: item hash -> ``[week, members, week, members, ...]`` (latest touches by week),
    and the group's size.

    >>> g = PeerTouches(weeks=4)
    >>> g.join("peer:hr/partner"); g.join("peer:hr/partner"); g.join("peer:hr/partner")
    >>> g.touch("peer:hr/partner", 7, day=100, previous=-1)
    >>> g.recent("peer:hr/partner", 7, day=101), g.share("peer:hr/partner", 7, day=101)
    (1, 0.333)
    >>> g.touch("peer:hr/partner", 7, day=130, previous=100)  # the same member, four weeks later
    >>> g.recent("peer:hr/partner", 7, day=130), g.recent("peer:hr/partner", 7, day=165)
    (1, 0)
    """

    def __init__(self, weeks: int = 4, cap: int = 256) -> None:
        self.weeks = weeks
        self.cap = cap
        self.items: dict[str, dict[int, list[int]]] = {}
        self.sizes: dict[str, int] = {}

    def join(self, key: str) -> None:
        self.sizes[key] = self.sizes.get(key, 0) + 1

    def leave(self, key: str) -> None:
        size = self.sizes.get(key, 0) - 1
        if size > 0:
            self.sizes[key] = size
        else:
            self.sizes.pop(key, None)

    def size(self, key: str) -> int:
        return self.sizes.get(key, 0)

    def known(self, key: str, item: int) -> bool:
        """Whether any member of the group ever touched ``item`` (while it was tracked)."""
        counts = self.items.get(key)
        return counts is not None and item in counts

    def touch(self, key: str, item: int, day: int, previous: int) -> None:
        """A member touched ``item`` on ``day``; its previous touch was on ``previous`` (-1: never)."""
        week = day // WEEK_DAYS
        if previous >= 0 and previous // WEEK_DAYS == week:
            return
        counts = self.items.get(key)
        if counts is None:
            counts = self.items[key] = {}
        buckets = counts.get(item)
        if buckets is None:
            if len(counts) >= self.cap:
                del counts[min(counts, key=lambda h: self._total(counts[h]))]  # the rarest item makes room
            buckets = counts[item] = []
        if previous >= 0:
            self._add(buckets, previous // WEEK_DAYS, -1)
        self._add(buckets, week, 1)
        oldest = week - self.weeks
        while buckets and buckets[0] <= oldest:
            del buckets[0:2]

    def untouch(self, key: str, item: int, day: int) -> None:
        """Take back a member's latest touch of ``item`` (on ``day``): the member is forgotten."""
        buckets = self.items.get(key, {}).get(item)
        if buckets is not None:
            self._add(buckets, day // WEEK_DAYS, -1)

    def recent(self, key: str, item: int, day: int) -> int:
        """Distinct members whose latest touch of ``item`` falls within the window ending on ``day``."""
        buckets = self.items.get(key, {}).get(item)
        if not buckets:
            return 0
        oldest = day // WEEK_DAYS - self.weeks
        return sum(buckets[i + 1] for i in range(0, len(buckets), 2) if buckets[i] > oldest)

    def share(self, key: str, item: int, day: int) -> float:
        return round(self.recent(key, item, day) / max(self.size(key), 1), 3)

    def spread(self, prefix: str, item: int, day: int) -> tuple[int, int]:
        """(how many group keys starting with ``prefix`` have a recent touch of ``item``, the most
        members of one such group that touched it): how many teams use an item, and its main team's use."""
        counts = [self.recent(key, item, day) for key in self.items if key.startswith(prefix)]
        return sum(1 for n in counts if n > 0), max(counts, default=0)

    def merge(self, other: PeerTouches) -> None:
        """Add another engine's aggregates to these (the partial aggregates of issue 32)."""
        for key, size in other.sizes.items():
            self.sizes[key] = self.sizes.get(key, 0) + size
        for key, counts in other.items.items():
            mine = self.items.setdefault(key, {})
            for item, buckets in counts.items():
                target = mine.setdefault(item, [])
                for i in range(0, len(buckets), 2):
                    self._add(target, buckets[i], buckets[i + 1])

    @staticmethod
    def _total(buckets: list[int]) -> int:
        return sum(buckets[1::2])

    @staticmethod
    def _add(buckets: list[int], week: int, delta: int) -> None:
        """Add ``delta`` to ``week``'s bucket (kept in week order; an emptied bucket is dropped)."""
        for i in range(0, len(buckets), 2):
            if buckets[i] == week:
                buckets[i + 1] += delta
                if buckets[i + 1] <= 0:
                    del buckets[i:i + 2]
                return
            if buckets[i] > week:
                if delta > 0:
                    buckets[i:i] = [week, delta]
                return
        if delta > 0:
            buckets += [week, delta]

    def __getstate__(self) -> tuple:
        return (self.weeks, self.cap, self.items, self.sizes)

    def __setstate__(self, state: tuple) -> None:
        self.weeks, self.cap, self.items, self.sizes = state


def sizes(groups: list[PeerTouches], key: str) -> int:
    """A group's members over several partitions' aggregates (each principal lives in one of them)."""
    return sum([g.size(key) for g in groups])


def recents(groups: list[PeerTouches], key: str, item: int, day: int) -> int:
    """:meth:`PeerTouches.recent` added up over several partitions' aggregates."""
    return sum([g.recent(key, item, day) for g in groups])


def spreads(groups: list[PeerTouches], prefix: str, item: int, day: int) -> tuple[int, int]:
    """:meth:`PeerTouches.spread` over several partitions' aggregates: a group's members are counted
    over all of them before asking how many groups use the item and the most members of one that do."""
    counts: dict[str, int] = {}
    for g in groups:
        for key in g.items:
            if key.startswith(prefix):
                counts[key] = counts.get(key, 0) + g.recent(key, item, day)
    return sum(1 for n in counts.values() if n > 0), max(counts.values(), default=0)
