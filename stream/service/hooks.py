"""Points where a caller observes the service without subclassing it (``privwatch bench`` does:
:mod:`stream.bench.hooks`). The service calls them at rare moments only: after each poll, for each
alert, when a background snapshot starts and ends."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stream.service.service import Service


class Hooks:
    """No-ops: override what you need."""

    def polled(self, service: Service, records: int) -> None:
        """After each poll and the handling of what it released (``records`` polled)."""

    def published(self, alert: dict[str, Any]) -> None:
        """An alert was handed to the producer."""

    def snapshot_forked(self) -> None:
        """A background snapshot's child was forked."""

    def snapshot_ended(self, child_cpu_s: float | None) -> None:
        """The background snapshot's child was collected (its CPU seconds), or cancelled or failed (None)."""
