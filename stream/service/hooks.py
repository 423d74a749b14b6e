"""Points where a caller observes the service without subclassing it (``privwatch bench`` does:
:mod:`stream.bench.hooks`). The service calls them at rare moments only: after each poll, for each
alert, when a checkpoint of the state is cut and when it is durable."""

from __future__ import annotations

from typing import Any, Protocol

from stream.ops.metrics import Metrics


class Loop(Protocol):
    """What a hook may read of the service after a poll, and how it asks it to stop."""

    handled_total: int
    stopping: bool
    metrics: Metrics


class Hooks:
    """No-ops: override what you need."""

    def polled(self, loop: Loop, records: int) -> None:
        """After each poll and the handling of what it released (``records`` polled)."""

    def published(self, alert: dict[str, Any]) -> None:
        """An alert was handed to the producer."""

    def checkpoint_started(self) -> None:
        """A checkpoint of the state was cut (its principals are written a slice per poll from now on)."""

    def checkpoint_ended(self, loop_s: float | None) -> None:
        """The checkpoint is written (the loop time it took, cut and slices), or failed (None)."""
