"""``privwatch run``: settings → metrics endpoint → optional Alertmanager sink → service loop."""

from __future__ import annotations

import argparse
import logging

from prometheus_client import CollectorRegistry

from detectors.registry import REGISTRY
from stream import __version__
from stream.kafka import clients
from stream.ops.http import Health, serve
from stream.ops.metrics import EngineCollector, Metrics
from stream.service.service import Service
from stream.settings import Settings, add_flags, load_settings

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="the always-on service: consume events, raise alerts")
    add_flags(p)
    p.add_argument("--create-topics", action="store_true", help="create missing topics first (development)")
    p.add_argument("--max-idle-s", type=float, default=None, help="exit after this long without records")
    p.set_defaults(func=run)


def make_sink(settings: Settings, metrics: Metrics):  # type: ignore[no-untyped-def]
    if not settings.alertmanager_url:
        return None
    from stream.alertmanager import AlertmanagerSink

    return AlertmanagerSink(
        settings.alertmanager_url,
        metrics=metrics,
        resend_s=settings.alertmanager_resend_s,
        queue_size=settings.alertmanager_queue_size,
        runbook_base_url=settings.runbook_base_url,
        evidence_url=settings.evidence_url,
    )


def run(args: argparse.Namespace) -> int:
    settings = load_settings(vars(args))
    logging.getLogger().setLevel(settings.log_level)
    log.info("starting version=%s changed_settings=%r", __version__, settings.changed())
    registry = CollectorRegistry()
    metrics = Metrics(registry, REGISTRY)
    health = Health()
    if args.create_topics:
        clients.create_topics(settings)
    service = Service(settings, metrics, health, make_sink(settings, metrics))
    registry.register(EngineCollector(service.partitions.totals, service.partitions.duplicates))
    server = serve(settings.metrics_host, settings.metrics_port, registry, health) if settings.metrics_port else None
    service.install_signal_handlers()
    try:
        return service.run(max_idle_s=args.max_idle_s)
    finally:
        if server is not None:
            server.shutdown()
