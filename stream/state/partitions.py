"""Per-partition detector state: one engine per input partition number, created on assignment and
dropped on revocation, so Kafka can move a partition (and its state) to another instance."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from detectors.engine import Engine


class Partitions:
    """Engines keyed by input partition number (access and permission partition *p* share one), and
    the owned partitions whose state is still being restored (paused meanwhile)."""

    def __init__(self, make_engine: Callable[[], Engine]) -> None:
        self.make_engine = make_engine
        self.engines: dict[int, Engine] = {}
        self.restoring: set[int] = set()

    def revoke(self, partitions: Iterable[int]) -> None:
        for p in partitions:
            self.engines.pop(p, None)
            self.restoring.discard(p)

    def engine(self, partition: int) -> Engine:
        engine = self.engines.get(partition)
        if engine is None:
            engine = self.engines[partition] = self.make_engine()
        return engine

    def ready(self) -> set[int]:
        """Partitions with an engine that are not being restored."""
        return set(self.engines) - self.restoring

    def duplicates(self) -> int:
        """Events the owned partitions' engines ignored as duplicates."""
        return sum(e.duplicates for e in self.engines.values())

    def totals(self) -> tuple[int, int]:
        """(live principals, approximate state bytes) across owned partitions."""
        principals = sum(e.n_principals() for e in self.engines.values())
        state_bytes = sum(e.state_bytes() for e in self.engines.values())
        return principals, state_bytes
