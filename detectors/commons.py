"""Aggregates shared across partitions: give each engine the partials of every other partition.

STAND-IN (issue 32, branch ``wire``): the interface fixed for H-share with the least behind it for the
service's side to be built and tested against. Only the novelty detector's peer groups are shared:
:class:`Pooled` answers its reads with the sums over its own :class:`~detectors.peers.PeerTouches` and
the others' (writes go to its own). The ``share`` branch's implementation replaces this module.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from detectors.peers import PeerTouches

if TYPE_CHECKING:
    from detectors.engine import Engine


def link(engines: Mapping[Hashable, Engine], remote: Mapping[Hashable, dict[str, Any]] = {}) -> None:  # noqa: B006
    """Give each engine the view of every other engine's partial plus the ``remote`` partials (keyed by
    partition, of partitions this process does not own). Call again whenever the set of engines or
    remote partials changes (cheap: lists of references)."""
    partials = {key: engine.partial() for key, engine in engines.items()}
    for key, engine in engines.items():
        engine.view([partial for other, partial in partials.items() if other != key] + list(remote.values()))


class Pooled(PeerTouches):
    """Reads of one engine's peer groups summed with the others' (read-only); writes to its own.

    Pickles as its own aggregates alone: a snapshot or a partial never carries the others'.
    """

    def __init__(self, own: PeerTouches, others: Sequence[PeerTouches]) -> None:
        super().__init__(own.weeks, own.cap)
        self.own = own
        self.others = list(others)

    def _all(self) -> list[PeerTouches]:
        return [self.own, *self.others]

    def size(self, key: str) -> int:
        return sum(g.size(key) for g in self._all())

    def known(self, key: str, item: int) -> bool:
        return any(g.known(key, item) for g in self._all())

    def recent(self, key: str, item: int, day: int) -> int:
        return sum(g.recent(key, item, day) for g in self._all())

    def spread(self, prefix: str, item: int, day: int) -> tuple[int, int]:
        keys = {key for g in self._all() for key in g.items if key.startswith(prefix)}
        counts = [self.recent(key, item, day) for key in keys]
        return sum(1 for n in counts if n > 0), max(counts, default=0)

    def join(self, key: str) -> None:
        self.own.join(key)

    def leave(self, key: str) -> None:
        self.own.leave(key)

    def touch(self, key: str, item: int, day: int, previous: int) -> None:
        self.own.touch(key, item, day, previous)

    def untouch(self, key: str, item: int, day: int) -> None:
        self.own.untouch(key, item, day)

    def merge(self, other: PeerTouches) -> None:
        self.own.merge(other)

    def __reduce__(self) -> tuple[Any, ...]:
        return PeerTouches, (self.own.weeks, self.own.cap), self.own.__getstate__()


def own_groups(groups: PeerTouches) -> PeerTouches:
    """A detector's own peer groups, whether or not a view is wrapped around them."""
    return groups.own if isinstance(groups, Pooled) else groups


def pooled(groups: PeerTouches, others: Sequence[Any]) -> PeerTouches:
    """``groups`` (own) read together with ``others`` (none: the own groups alone)."""
    own = own_groups(groups)
    return Pooled(own, others) if others else own
