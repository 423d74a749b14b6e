"""The service as ``privwatch bench`` runs it: the real :class:`~stream.service.Service`, with hooks
that time (b), start the latency phase (c), and note what (c) needs to explain its latency (alerts,
merge waits and holds, background snapshots)."""

from __future__ import annotations

import time
from typing import Any

from detectors.engine import Engine, EngineConfig
from stream.bench_bare import Rate
from stream.partitions import Partitions
from stream.service import Service


class BenchService(Service):
    """The real service, with a hook after each poll: measure (b), then run the latency phase (c).

    ``detectors`` replaces the default suite (``[]``: none, the pipeline's floor); without
    ``start_latency`` the service stops once the target is reached."""

    def __init__(self, *args: Any, target: int, start_latency: Any = None, detectors: list[str] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if detectors is not None:
            config = EngineConfig(cooldown_s=self.settings.cooldown_s, detectors=detectors)
            self.partitions = Partitions(lambda: self._with_feedback(Engine(config)))
        self.rate = Rate(target)
        self.start_latency = start_latency
        self.latency_proc: Any = None
        self.alerts_published = 0
        self.alerts_before_latency = 0
        self.merge_timeouts_before_latency = 0.0
        self.merge_hold_before_latency: dict[str, float] = {}
        #: each background snapshot's child: when it was forked and when collected or cancelled (wall
        #: clock; None: neither yet), and its CPU seconds (None: not collected)
        self.snapshot_runs: list[tuple[float, float | None, float | None]] = []

    def snapshot_in_background(self, now: float) -> None:
        before = self.forked
        forked_at = time.time()
        super().snapshot_in_background(now)
        if self.forked is not None and self.forked is not before:
            self.snapshot_runs.append((forked_at, None, None))

    def collect_forked(self) -> None:
        running = self.forked
        super().collect_forked()
        if running is not None and self.forked is None and self.snapshot_runs:
            self.snapshot_runs[-1] = (self.snapshot_runs[-1][0], time.time(), running.child_cpu_s)

    def cancel_forked(self) -> None:
        running = self.forked
        super().cancel_forked()
        if running is not None and self.snapshot_runs and self.snapshot_runs[-1][1] is None:
            self.snapshot_runs[-1] = (self.snapshot_runs[-1][0], time.time(), None)

    def publish(self, alert: dict[str, Any], partition: int = -1) -> None:
        self.alerts_published += 1
        super().publish(alert, partition)

    def poll_once(self) -> int:
        n = super().poll_once()
        if self.latency_proc is None:
            if self.rate.batch(self.handled_total):
                self.alerts_before_latency = self.alerts_published
                self.merge_timeouts_before_latency = self.merge_timeouts()
                self.merge_hold_before_latency = self.merge_hold()
                if self.start_latency is None:
                    self.stopping = True
                    return n
                self.latency_proc = self.start_latency(self.rate.result()["events_per_s"])
        elif not self.latency_proc.is_alive():
            self.stopping = True
        return n

    def merge_timeouts(self) -> float:
        return self.metrics.registry.get_sample_value("privwatch_merge_timeouts_total") or 0.0

    def merge_hold(self) -> dict[str, float]:
        """The merge-hold histogram's sampled records so far: in all, and held over 0.1 and 0.5 s."""
        value = self.metrics.registry.get_sample_value
        total = value("privwatch_merge_hold_seconds_count") or 0.0
        return {"sampled": total, **{f"over_{ms}ms": total - (value("privwatch_merge_hold_seconds_bucket",
                                                                      {"le": str(ms / 1000)}) or 0.0)
                                     for ms in (100, 500)}}


def detector_count(service: Service) -> int:
    return sum(len(engine.detectors) for engine in service.partitions.engines.values())
