"""What ``privwatch bench`` observes of the real :class:`~stream.service.service.Service`, through its
hooks (:class:`stream.service.hooks.Hooks`): it times (b), starts the latency phase (c), and notes
what (c) needs to explain its latency (alerts, merge waits and holds, checkpoints of the state)."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry

from detectors.engine import EngineConfig
from detectors.registry import REGISTRY
from stream.bench.bare import Rate
from stream.ops.metrics import Metrics
from stream.service.hooks import Hooks, Loop
from stream.service.service import Service
from stream.settings import Settings


class BenchHooks(Hooks):
    """After each poll: measure (b), then run the latency phase (c); without ``start_latency`` the
    service stops once the target is reached."""

    def __init__(self, target: int, start_latency: Any = None) -> None:
        self.rate = Rate(target)
        self.start_latency = start_latency
        self.latency_proc: Any = None
        self.alerts_published = 0
        self.alerts_before_latency = 0
        self.merge_timeouts_before_latency = 0.0
        self.merge_hold_before_latency: dict[str, float] = {}
        #: each checkpoint of the state: when it was cut and when it was durable (wall clock; None: not
        #: yet), and the loop's time it took (None: failed)
        self.snapshot_runs: list[tuple[float, float | None, float | None]] = []

    def checkpoint_started(self) -> None:
        self.snapshot_runs.append((time.time(), None, None))

    def checkpoint_ended(self, loop_s: float | None) -> None:
        if self.snapshot_runs and self.snapshot_runs[-1][1] is None:
            self.snapshot_runs[-1] = (self.snapshot_runs[-1][0], time.time(), loop_s)

    def published(self, alert: dict[str, Any]) -> None:
        self.alerts_published += 1

    def polled(self, service: Loop, records: int) -> None:
        if self.latency_proc is None:
            if self.rate.batch(service.handled_total):
                self.alerts_before_latency = self.alerts_published
                self.merge_timeouts_before_latency = merge_timeouts(service)
                self.merge_hold_before_latency = merge_hold(service)
                if self.start_latency is None:
                    service.stopping = True
                    return
                self.latency_proc = self.start_latency(self.rate.result()["events_per_s"])
        elif not self.latency_proc.is_alive():
            service.stopping = True


def bench_service(settings: Settings, hooks: BenchHooks, detectors: list[str] | None = None) -> Service:
    """The service as deployed, observed by ``hooks``; ``detectors`` replaces the default suite (``[]``:
    none, the pipeline's floor)."""
    config = None if detectors is None else EngineConfig(cooldown_s=settings.cooldown_s, detectors=detectors)
    return Service(settings, Metrics(CollectorRegistry(), REGISTRY), engine_config=config, hooks=hooks)


def merge_timeouts(service: Loop) -> float:
    return service.metrics.registry.get_sample_value("privwatch_merge_timeouts_total") or 0.0


def merge_hold(service: Loop) -> dict[str, float]:
    """The merge-hold histogram's sampled records so far: in all, and held over 0.1 and 0.5 s."""
    value = service.metrics.registry.get_sample_value
    total = value("privwatch_merge_hold_seconds_count") or 0.0
    return {"sampled": total, **{f"over_{ms}ms": total - (value("privwatch_merge_hold_seconds_bucket",
                                                                  {"le": str(ms / 1000)}) or 0.0)
                                 for ms in (100, 500)}}


def detector_count(service: Service) -> int:
    return sum(len(engine.detectors) for engine in service.partitions.engines.values())
