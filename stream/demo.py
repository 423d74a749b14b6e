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
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
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
from stream.progress import colour_ok
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
    p.add_argument("--heartbeat-s", type=float, default=10.0, help="how often to say how far the stream is")
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
        commons_topic=f"{PREFIX}.{run_id}.commons",
        state_key=f"demo-{run_id}",
        metrics_host="127.0.0.1",
        metrics_port=args.metrics_port,
        snapshot_interval_s=10.0,
    )


@dataclass
class Progress:
    """What the demo's threads have done so far, for the heartbeat and the end message."""

    total: int
    first_ts: str
    days: int
    produced: int = 0
    last_ts: str = ""
    complete: bool = False
    levels: dict[str, int] = field(default_factory=dict)

    def day(self) -> int:
        """The simulated day the stream has reached (1-based)."""
        if not self.last_ts:
            return 0
        return (datetime.fromisoformat(self.last_ts.replace("Z", "+00:00"))
                - datetime.fromisoformat(self.first_ts.replace("Z", "+00:00"))).days + 1

    def line(self) -> str:
        pages = sum(self.levels.get(level, 0) for level in PAGING_LEVELS)
        quiet = sum(self.levels.values()) - pages
        return (f"day {self.day()} of {self.days}, {self.produced:,} of {self.total:,} events streamed, "
                f"{pages} pages so far ({quiet} low/info alerts)")


def _produce(events: list[dict[str, Any]], settings: Settings, baseline_end: str, speedup: float,
             stop: threading.Event, progress: Progress) -> None:
    def noted(stream: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for event in stream:
            if stop.is_set():
                return
            progress.produced += 1
            progress.last_ts = event["ts"]
            yield event

    history = [e for e in events if e["ts"] < baseline_end]
    topics = (settings.access_topic, settings.permission_topic)
    produce_to_kafka(noted(history), settings.bootstrap_servers, *topics, speedup=0.0)
    if stop.is_set():
        return
    say(f"{len(history):,} events of history produced; now streaming live at {speedup:g}x")
    produce_to_kafka(noted(events[len(history):]), settings.bootstrap_servers, *topics, speedup=speedup)
    progress.complete = not stop.is_set()
    if progress.complete:
        say("the simulated stream is complete; Ctrl-C stops the demo")


def _heartbeat(progress: Progress, stop: threading.Event, every_s: float) -> None:
    while not stop.wait(every_s):
        if not progress.complete:
            say(progress.line())


def _print_alerts(settings: Settings, stop: threading.Event, progress: Progress) -> None:
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers, group_id=None,
                             auto_offset_reset="earliest", enable_auto_commit=False)
    consumer.subscribe([settings.alerts_topic])
    colour = colour_ok(sys.stdout)
    try:
        while not stop.is_set():
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    alert = orjson.loads(record.value)
                    progress.levels[alert["level"]] = progress.levels.get(alert["level"], 0) + 1
                    if alert["level"] in PAGING_LEVELS:
                        print(render_alert(alert, colour=colour), flush=True)
    except UnknownTopicOrPartitionError:
        pass
    finally:
        consumer.close()


def say(message: str) -> None:
    print(f"demo: {message}", flush=True)


def run(args: argparse.Namespace) -> int:
    logging.getLogger("stream").setLevel(logging.WARNING)  # the printed alerts are the demo's output
    settings = demo_settings(args)
    say(f"simulating {args.principals} principals x {args.days} days (seed {args.seed})")
    events, labels = simulate(args.seed, args.principals, args.days, baseline_days=args.baseline_days)
    incidents = sorted({lab["kind"] for lab in labels if lab["label"] == "incident"})
    say(f"{len(events):,} events with incidents: {', '.join(incidents)}")
    clients.create_topics(settings, partitions=3)
    registry = CollectorRegistry()
    metrics, health = Metrics(registry, REGISTRY), Health()
    service = Service(settings, metrics, health)
    registry.register(EngineCollector(service.partitions.totals))
    server = serve(settings.metrics_host, settings.metrics_port, registry, health)
    port = server.server_address[1]
    say(f"metrics at http://127.0.0.1:{port}/metrics (health /healthz, readiness /readyz)")
    stop = threading.Event()
    progress = Progress(total=len(events), first_ts=events[0]["ts"], days=args.days)

    def on_signal(*_: Any) -> None:
        stop.set()
        service.request_stop()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    baseline_end = labels_start(events, args.baseline_days)
    threads = [threading.Thread(target=_produce, args=(events, settings, baseline_end, args.speedup, stop, progress),
                                daemon=True),
               threading.Thread(target=_print_alerts, args=(settings, stop, progress), daemon=True),
               threading.Thread(target=_heartbeat, args=(progress, stop, args.heartbeat_s), daemon=True)]
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
    summary = ", ".join(f"{level}={progress.levels.get(level, 0)}"
                        for level in ("critical", "high", "medium", "low", "info"))
    how = "after the whole simulated stream" if progress.complete else f"at {progress.line()}"
    print(f"demo: stopped {how}. alerts by level: {summary}", file=sys.stderr)
    return 0


def labels_start(events: list[dict[str, Any]], baseline_days: int) -> str:
    """The RFC 3339 time ``baseline_days`` after the first event (the end of the fast history)."""
    from datetime import timedelta

    first = datetime.fromisoformat(events[0]["ts"].replace("Z", "+00:00"))
    end = first + timedelta(days=baseline_days)
    return end.strftime("%Y-%m-%dT%H:%M:%S")

