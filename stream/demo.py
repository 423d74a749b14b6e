"""``privwatch demo`` (``make demo``): a simulated organisation streamed through Kafka and the
service, with paging alerts printed as they arrive. Ctrl-C stops everything cleanly.

The first ``baseline_days`` of the organisation's history are produced at full speed (the service
learns its baselines from them, as it would from retained history); the rest is produced at
``speedup`` times real time, so incidents unfold and alerts arrive while you watch.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from typing import Any

import orjson
from kafka import KafkaConsumer
from kafka.errors import UnknownTopicOrPartitionError
from prometheus_client import CollectorRegistry

from detectors.calibrate import PAGING_LEVELS
from detectors.registry import REGISTRY
from stream.kafka import clients
from stream.ops.http import Health, serve
from stream.ops.metrics import EngineCollector, Metrics
from stream.replay.render import render_alert
from stream.service.service import Service
from stream.settings import Settings
from stream.simulate import produce_to_kafka, simulate

log = logging.getLogger(__name__)
PREFIX = "privwatch.demo"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="stream a simulated organisation through privwatch and show alerts")
    p.add_argument("--bootstrap-servers", default="127.0.0.1:9092")
    p.add_argument("--principals", type=int, default=150)
    p.add_argument("--days", type=int, default=14)
    p.add_argument("--baseline-days", type=int, default=8)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--speedup", type=float, default=8640.0, help="event time per wall time after the baseline")
    p.add_argument("--metrics-port", type=int, default=9464)
    p.add_argument("--duration-s", type=float, default=None, help="stop by itself after this long")
    p.set_defaults(func=run)


def demo_settings(args: argparse.Namespace) -> Settings:
    run_id = time.strftime("%Y%m%d%H%M%S")
    return Settings(
        bootstrap_servers=args.bootstrap_servers,
        group_id=f"{PREFIX}.{run_id}",
        access_topic=f"{PREFIX}.{run_id}.access-events",
        permission_topic=f"{PREFIX}.{run_id}.permission-events",
        alerts_topic=f"{PREFIX}.{run_id}.alerts",
        dead_letter_topic=f"{PREFIX}.{run_id}.dead-letter",
        feedback_topic=f"{PREFIX}.{run_id}.feedback",
        state_topic=f"{PREFIX}.{run_id}.state",
        state_key=f"demo-{run_id}",
        metrics_host="127.0.0.1",
        metrics_port=args.metrics_port,
        snapshot_interval_s=10.0,
    )


def _produce(events: list[dict[str, Any]], settings: Settings, baseline_end: str, speedup: float,
             stop: threading.Event) -> None:
    history = [e for e in events if e["ts"] < baseline_end]
    live = (e for e in events[len(history):] if not stop.is_set())
    topics = (settings.access_topic, settings.permission_topic)
    produce_to_kafka(history, settings.bootstrap_servers, *topics, speedup=0.0)
    print(f"demo: {len(history):,} events of history produced; now streaming live at {speedup:g}x", flush=True)
    produce_to_kafka(live, settings.bootstrap_servers, *topics, speedup=speedup)
    print("demo: the simulated stream is complete (Ctrl-C to stop)", flush=True)


def _print_alerts(settings: Settings, stop: threading.Event, counts: dict[str, int]) -> None:
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers, group_id=None,
                             auto_offset_reset="earliest", enable_auto_commit=False)
    consumer.subscribe([settings.alerts_topic])
    try:
        while not stop.is_set():
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    alert = orjson.loads(record.value)
                    counts[alert["level"]] = counts.get(alert["level"], 0) + 1
                    if alert["level"] in PAGING_LEVELS:
                        print(render_alert(alert), flush=True)
    except UnknownTopicOrPartitionError:
        pass
    finally:
        consumer.close()


def run(args: argparse.Namespace) -> int:
    logging.getLogger("stream").setLevel(logging.WARNING)  # the printed alerts are the demo's output
    settings = demo_settings(args)
    print(f"demo: simulating {args.principals} principals x {args.days} days (seed {args.seed})", flush=True)
    events, labels = simulate(args.seed, args.principals, args.days, baseline_days=args.baseline_days)
    incidents = sorted({lab["kind"] for lab in labels if lab["label"] == "incident"})
    print(f"demo: {len(events):,} events with incidents: {', '.join(incidents)}", flush=True)
    clients.create_topics(settings, partitions=3)
    registry = CollectorRegistry()
    metrics, health = Metrics(registry, REGISTRY), Health()
    service = Service(settings, metrics, health)
    registry.register(EngineCollector(service.partitions.totals))
    server = serve(settings.metrics_host, settings.metrics_port, registry, health)
    port = server.server_address[1]
    print(f"demo: metrics at http://127.0.0.1:{port}/metrics (health /healthz, readiness /readyz)", flush=True)
    stop, counts = threading.Event(), dict[str, int]()

    def on_signal(*_: Any) -> None:
        stop.set()
        service.request_stop()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    baseline_end = labels_start(events, args.baseline_days)
    threads = [threading.Thread(target=_produce, args=(events, settings, baseline_end, args.speedup, stop),
                                daemon=True),
               threading.Thread(target=_print_alerts, args=(settings, stop, counts), daemon=True)]
    for t in threads:
        t.start()
    if args.duration_s:
        threading.Timer(args.duration_s, on_signal).start()
    try:
        service.run()
    finally:
        stop.set()
        threads[1].join(timeout=5)
        server.shutdown()
    summary = ", ".join(f"{level}={counts.get(level, 0)}" for level in ("critical", "high", "medium", "low", "info"))
    print(f"demo: stopped. alerts by level: {summary}", file=sys.stderr)
    return 0


def labels_start(events: list[dict[str, Any]], baseline_days: int) -> str:
    """The RFC 3339 time ``baseline_days`` after the first event (the end of the fast history)."""
    from datetime import datetime, timedelta

    first = datetime.fromisoformat(events[0]["ts"].replace("Z", "+00:00"))
    end = first + timedelta(days=baseline_days)
    return end.strftime("%Y-%m-%dT%H:%M:%S")

