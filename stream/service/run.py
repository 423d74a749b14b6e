"""``privwatch run``: settings → metrics endpoint → page delivery (a thread, with Alertmanager) → service loop."""

from __future__ import annotations

import argparse
import logging

from prometheus_client import CollectorRegistry

from detectors.registry import REGISTRY
from stream import __version__
from stream.alertmanager.deliver import start_thread
from stream.config import add_flags, load_settings
from stream.kafka import clients
from stream.ops.http import Health, serve
from stream.ops.metrics import EngineCollector, Metrics
from stream.service.service import Service

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="the always-on service: consume events, raise alerts")
    add_flags(p)
    p.add_argument("--create-topics", action="store_true", help="create missing topics first (development)")
    p.add_argument("--max-idle-s", type=float, default=None, help="exit after this long without records")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(vars(args))
    logging.getLogger().setLevel(settings.log_level)
    log.info("starting version=%s changed_settings=%r", __version__, settings.changed())
    registry = CollectorRegistry()
    metrics = Metrics(registry, REGISTRY)
    health = Health()
    if args.create_topics:
        clients.create_topics(settings)
    service = Service(settings, metrics, health)
    registry.register(EngineCollector(service.partitions.totals, service.partitions.duplicates))
    server = serve(settings.metrics_host, settings.metrics_port, registry, health) if settings.metrics_port else None
    service.install_signal_handlers()
    delivery = None
    if settings.alertmanager_url and settings.deliver_in_run:
        delivery, thread = start_thread(settings, metrics)
    try:
        return service.run(max_idle_s=args.max_idle_s)
    finally:
        if delivery is not None:
            delivery.stop()
            thread.join(timeout=30)
        if server is not None:
            server.shutdown()
