"""A deployment's partitions in one replay: each key partition's engine, run interleaved in the input's
order and linked as the service links them (:func:`detectors.commons.link`).

The partitions spread over ``instances`` simulated instances round-robin (partition ``p`` on instance
``p % instances``). Engines of one instance see each other's partials live; those of other instances
only as copies (a pickle round trip, as the live service publishes them), taken whenever event time
crosses a multiple of ``share_interval_s`` (the service's publishing interval) and only of the
partitions that processed an event since their last copy. Everything follows event time and the
input's order, so the same input gives the same alerts.
"""

from __future__ import annotations

import pickle
from collections.abc import Hashable
from typing import Any

from detectors.commons import link
from detectors.engine import Engine, EngineConfig
from detectors.events import Event
from stream.state.repartition import partition_of

#: the live service's publishing interval of its partials (seconds)
SHARE_INTERVAL_S = 5.0


class Deployment:
    """``partitions`` engines over ``instances`` instances; :meth:`route` is ``replay_lines``'s router.

    >>> d = Deployment(3, instances=1)
    >>> d.engines[0].detectors[0].others_.parts != ()
    True
    """

    def __init__(self, partitions: int, instances: int = 1, share_interval_s: float = SHARE_INTERVAL_S,
                 config: EngineConfig | None = None) -> None:
        if partitions < 1 or instances < 1 or share_interval_s <= 0:
            raise ValueError("partitions and instances must be at least 1, share_interval_s positive")
        self.engines = [Engine(config) for _ in range(partitions)]
        self.instances: list[dict[Hashable, Engine]] = [
            {p: self.engines[p] for p in range(partitions) if p % instances == k}
            for k in range(min(instances, partitions))]
        self.share_interval_s = share_interval_s
        self._partition: dict[str, int] = {}
        self._copies: dict[int, dict[str, Any]] = {}
        self._dirty = set(range(partitions))
        self._next_share = float("-inf")
        self.shares = 0  # copies taken (a partial's pickle round trip each)
        self._link()

    def route(self, event: Event) -> Engine:
        """The engine of ``event``'s key partition; first, the copies due by its event time."""
        p = self._partition.get(event.principal_id)
        if p is None:
            p = self._partition[event.principal_id] = partition_of(event.principal_id, len(self.engines))
        if len(self.instances) > 1:
            if event.ts >= self._next_share:
                self._share(event.ts)
            self._dirty.add(p)
        return self.engines[p]

    def _share(self, ts: float) -> None:
        """Copy the partials changed since their last copy, and give every instance the copies of the
        partitions it does not own."""
        for p in sorted(self._dirty):
            self._copies[p] = pickle.loads(pickle.dumps(self.engines[p].partial(), pickle.HIGHEST_PROTOCOL))
            self.shares += 1
        self._dirty.clear()
        self._link()
        self._next_share = ts - ts % self.share_interval_s + self.share_interval_s

    def _link(self) -> None:
        for members in self.instances:
            remote: dict[Hashable, dict[str, Any]] = {p: part for p, part in self._copies.items() if p not in members}
            link(members, remote)
