"""``privwatch bench``: throughput, latency and memory on one broker, in one run.

1. Fresh topics (access and permission co-partitioned, alerts, dead letters, feedback, state),
   pre-filled with N simulated events keyed like the contract says.
2. (a) a bare kafka-python consumer that only decodes JSON (orjson) reads all N
   (:mod:`stream.bench.bare`); (a') the same consumer in a process set up as the service's is
   (garbage collector and allocator settings: :func:`~stream.bench.bare.tuned_bare_consumer`);
   (b0) the service with no detectors reads the same N: the pipeline's own floor (validation,
   merge, offsets, metrics), the most (b) could reach;
   (b) the full service (every detector, alerts produced) reads the same N.
   The services run as deployed, with snapshots of their state to the state topic. Each of the
   four runs three times, in rounds of (a), (a'), (b0), (b), so that all four see the machine as it is
   at the time (this 2-core machine's speed drifts over minutes; with all of (a) first, then (b),
   (a)'s fastest run ranged 77k-108k events/s from one bench to the next); each run in a fresh
   process, with a fresh group and empty state. The fastest run of each counts ((b) used to run
   once against (a)'s fastest of three, so noise only ever lowered the ratio); the JSON also holds
   the ratio of the median runs.
   Rates are counted from the end of the first non-empty poll (group join excluded) to the N-th record,
   with the process's CPU time over the same span.
3. (c) the service of (b)'s last run keeps running while a separate process produces at half of
   (b)'s fastest rate
   through Kafka's console producer (:mod:`stream.bench.latency`), with a paging probe at a fixed
   rate; p50/p99 of probe-sent → alert-consumed, after an unmeasured start (until a probe's alert
   comes back, then 10 s at the full rate). The service's CPU and the machine's over the window, and
   second by second with the slowest probe of each second (:mod:`stream.bench.timeline`).
4. (b) in memory: the same events through the same service loop with no broker and no kafka-python
   (:func:`stream.bench.loop.measure`), in a process of its own: the pipeline's ceiling whatever the
   Kafka client does, split into decoding, the engines and the loop.
5. (d) state bytes per principal at 100k principals; (e) peak RSS (``ru_maxrss``) of the service's
   process in (b) and (c), and of this one (which ran (d)).
6. (f) catch-up (:func:`stream.bench.catchup.phase`): on topics of its own, the service started cold on
   a backlog against a bare consumer tuned for throughput, start-up included; issue 32's target is a
   ratio of at least 0.5 on at least 500k events.

(a), (a'), (b0), (b) with (c), and (b) in memory each run in a fresh spawned process (:func:`spawned`).
"""

from __future__ import annotations

import argparse
import logging
import math
import multiprocessing
import os
import resource
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import orjson

from detectors import native
from stream.bench import catchup as bench_catchup
from stream.bench import latency as bench_latency
from stream.bench import loop as bench_loop
from stream.bench import sender as bench_sender
from stream.bench import timeline as bench_timeline
from stream.bench.bare import RUNS, bare_consumer, fastest, tuned_bare_consumer
from stream.bench.hooks import BenchHooks, bench_service, detector_count, merge_hold, merge_timeouts
from stream.bench.state import state_bytes_per_principal
from stream.bench.table import table
from stream.bench.topics import create_topics, delete_topics, settings_for
from stream.progress import bar
from stream.settings import Settings
from stream.simulate import EVENTS_PER_PRINCIPAL_DAY, recent_history

log = logging.getLogger(__name__)
T = TypeVar("T")

STATE_PRINCIPALS = 100_000
#: Quick mode: feeding 100k principals alone takes minutes on a shared 2-core machine.
QUICK_EVENTS = 50_000
QUICK_STATE_PRINCIPALS = 10_000
#: Upper bound of the latency phase's rate (half the pipeline's maximum), for sizing its history.
MAX_LATENCY_RATE = 50_000
#: Share of the asked rate the latency phase's load generator must reach for its result to stand alone.
KEPT_UP = 0.95
#: (f)'s backlog: the catch-up target asks for at least 500k events; quick mode's stays quick.
CATCHUP_EVENTS = 500_000
QUICK_CATCHUP_EVENTS = 20_000


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="throughput, end-to-end latency and memory against a broker")
    p.add_argument("--bootstrap-servers", default="127.0.0.1:9092")
    p.add_argument("--events", type=int, default=200_000, help="records pre-filled and read (default 200k)")
    p.add_argument("--principals", type=int, default=500, help="simulated organisation size")
    p.add_argument("--partitions", type=int, default=3, help="partitions of each input topic")
    p.add_argument("--output", default="bench.json", help="JSON result file")
    p.add_argument("--latency-seconds", type=float, default=20.0, help="length of the fixed-rate phase")
    p.add_argument("--probe-rate", type=float, default=10.0, help="paging probes per second")
    p.add_argument("--kafka-libs", type=Path, default=bench_sender.DEFAULT_LIBS,
                   help="Kafka jars with kafka-tools, whose console producer (Java 17+) is the latency phase's load "
                        "generator (default: .cache/kafka/libs of this checkout, from make kafka-fetch)")
    p.add_argument("--state-principals", type=int, default=None,
                   help=f"principals for state bytes (default {STATE_PRINCIPALS:,}; {QUICK_STATE_PRINCIPALS:,} "
                        f"when --events <= {QUICK_EVENTS:,}, so the quick mode stays under two minutes)")
    p.add_argument("--catchup-events", type=int, default=None,
                   help=f"backlog of the catch-up phase (f) (default {CATCHUP_EVENTS:,}; {QUICK_CATCHUP_EVENTS:,} "
                        f"when --events <= {QUICK_EVENTS:,})")
    p.add_argument("--catchup-partitions", type=int, default=2, help="partitions of the catch-up phase's topics")
    p.add_argument("--seed", type=int, default=1)
    p.set_defaults(func=run)


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)  # KiB on Linux


def crc32c_check() -> dict[str, Any]:
    """Whether kafka-python verifies record CRCs with the C ``crc32c`` package (not its pure-Python one)."""
    import kafka.record.util as util

    try:
        import crc32c
    except ImportError:
        return {"package": False, "used_by_kafka_python": False}
    return {"package": True, "used_by_kafka_python": util._crc32c is crc32c.crc32c}


def weeks_for_latency(events: int, principals: int, seconds: float) -> int:
    """Weeks of replayed history the latency phase may need: at most ``MAX_LATENCY_RATE`` events/s for
    its unmeasured warm-up (:data:`~stream.bench.latency.WARMUP_S`) and ``seconds``, out of a replayed
    week of about ``EVENTS_PER_PRINCIPAL_DAY`` per principal and day (the whole history when it is
    shorter), with a quarter and one week to spare.

    >>> weeks_for_latency(200_000, 500, 20.0)
    22
    """
    per_replay = min(events, principals * EVENTS_PER_PRINCIPAL_DAY * 7)
    return math.ceil(1.25 * MAX_LATENCY_RATE * (bench_latency.WARMUP_S + seconds) / per_replay) + 1


def spawned(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in a fresh spawned process that logs as this one does.

    The services under test run there, as deployed: in a process of their own. In this process they
    shared the heap with the pre-filled history, (b0)'s leftovers and the load generator's templates,
    and (b) took 22-33 µs of CPU per event from one run to the next (eight runs), where (a), in a
    process of its own, took 8.3-9.5.
    """
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=context, initializer=_log_at, initargs=(logging.getLogger().level,)) as pool:
        return pool.submit(fn, *args).result()


def _log_at(level: int) -> None:
    from stream.cli import configure_logging

    configure_logging(logging.getLevelName(level))


def run_service(settings: Settings, n: int, detectors: list[str] | None = None) -> dict[str, Any]:
    """The service stopped at n, no latency phase: a run of (b), or of (b0) with ``detectors=[]``
    (decode, merge, offsets, metrics, commits)."""
    hooks = BenchHooks(target=n)
    service = bench_service(settings, hooks, detectors)
    service.run(max_idle_s=60.0)
    if not hooks.rate.t_done:
        raise RuntimeError(f"service run handled only {service.handled_total} of {n} records")
    return {**hooks.rate.result(), "alerts": hooks.alerts_published, "detectors": detector_count(service),
            "merge_timeouts": int(merge_timeouts(service))}


def generator_kept_up(latency: dict[str, Any]) -> bool:
    """Whether the load generator sent at least :data:`KEPT_UP` of the rate asked. When it did not, it
    ran out of CPU: one Python process has its limit, and the generator shares the machine with the
    broker and the service. The latency measured is then not the service's alone.

    >>> generator_kept_up({"rate_events_per_s": 10_000, "achieved_rate_events_per_s": 9_600})
    True
    >>> generator_kept_up({"rate_events_per_s": 12_361, "achieved_rate_events_per_s": 10_587})
    False
    """
    return latency.get("achieved_rate_events_per_s", 0.0) >= KEPT_UP * latency.get("rate_events_per_s", 0.0)


def run_pipeline(settings: Settings, n: int, latency_args: dict[str, Any],
                 earlier_max_rate: float = 0.0) -> tuple[dict, dict, float]:
    """(b)'s last run and (c) with one service instance, (c) at half the fastest rate of (b) so far
    (``earlier_max_rate``: the earlier runs'): returns (throughput, latency, this process's peak RSS in MB)."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    latency: dict[str, Any] = {}

    def start_latency(own_rate: float) -> Any:
        max_rate = max(own_rate, earlier_max_rate)
        latency["rate_events_per_s"] = round(max_rate / 2.0, 1)
        args = (settings.bootstrap_servers, (settings.access_topic, settings.permission_topic),
                settings.alerts_topic, latency_args["background"], max_rate / 2.0, latency_args["probe_rate"],
                latency_args["seconds"], uuid.uuid4().hex[:6], os.getpid(), latency_args["libs"])
        proc = ctx.Process(target=bench_latency.child, args=(queue, *args), daemon=True)
        proc.start()
        return proc

    hooks = BenchHooks(target=n, start_latency=start_latency)
    service = bench_service(settings, hooks)
    service.run(max_idle_s=latency_args["seconds"] + 60.0)
    if not hooks.rate.t_done:
        raise RuntimeError(f"pipeline handled only {service.handled_total} of {n} records")
    throughput = {**hooks.rate.result(), "alerts": hooks.alerts_before_latency,
                  "detectors": detector_count(service), "merge_timeouts": int(hooks.merge_timeouts_before_latency)}
    if hooks.latency_proc is not None:
        hooks.latency_proc.join(timeout=30)
        latency.update(queue.get(timeout=30))
        latency["generator_kept_up"] = generator_kept_up(latency)
        # every alert of the phase, probes' included: the service's steady state, not an alert storm
        latency["alerts"] = hooks.alerts_published - hooks.alerts_before_latency
        # records released when their wait for their partition's other topic ran out (see stream.service.merge)
        latency["merge_timeouts"] = int(merge_timeouts(service) - hooks.merge_timeouts_before_latency)
        # how long records waited in the merge for their partition's other topic (one in 16 sampled)
        latency["merge_hold"] = {k: int(v - hooks.merge_hold_before_latency.get(k, 0.0))
                                 for k, v in merge_hold(service).items()}
        if "timeline" in latency:  # did a background snapshot's child run when the probes were slowest?
            latency["snapshots"] = bench_timeline.mark_snapshots(latency["timeline"], hooks.snapshot_runs,
                                                                 latency["started_at"])
            latency["slowest_second"] = bench_timeline.slowest(latency["timeline"])  # with its mark
    return throughput, latency, peak_rss_mb()


def ratios(result: dict[str, Any]) -> dict[str, float]:
    """(b)/(a), (b)/(a') and (b0)/(a) of the fastest runs; also (b)/(a) of the median runs.

    >>> ratios({"bare": {"events_per_s": 10.0, "runs_events_per_s": [8.0, 9.0, 10.0]},
    ...         "bare_tuned": {"events_per_s": 12.5, "runs_events_per_s": [12.5]},
    ...         "floor": {"events_per_s": 6.0, "runs_events_per_s": [6.0]},
    ...         "pipeline": {"events_per_s": 5.0, "runs_events_per_s": [3.0, 5.0, 4.0]}})
    {'ratio': 0.5, 'ratio_to_tuned_bare': 0.4, 'floor_ratio': 0.6, 'ratio_of_medians': 0.444}
    """
    bare, pipeline = result["bare"], result["pipeline"]
    return {"ratio": round(pipeline["events_per_s"] / bare["events_per_s"], 3),
            "ratio_to_tuned_bare": round(pipeline["events_per_s"] / result["bare_tuned"]["events_per_s"], 3),
            "floor_ratio": round(result["floor"]["events_per_s"] / bare["events_per_s"], 3),
            "ratio_of_medians": round(statistics.median(pipeline["runs_events_per_s"])
                                      / statistics.median(bare["runs_events_per_s"]), 3)}


def in_memory(n: int, principals: int, seed: int, weeks: int, partitions: int) -> dict[str, Any]:
    """(b) in memory: the bench's events again (the same simulation), through the service loop with no
    broker (:func:`stream.bench.loop.measure`)."""
    lines = [orjson.dumps(doc) for doc in recent_history(n, principals, seed, weeks_before=weeks)]
    result = bench_loop.measure(lines, partitions)
    return {**result, "events_per_s": round(1e6 / result["us_per_event"], 1)}


class Steps:
    """Names the phase under way on the bench's progress bar (a terminal only) and counts the one before."""

    def __init__(self, shown: Any) -> None:
        self.shown, self.begun = shown, False

    def __call__(self, what: str) -> None:
        if self.begun:
            self.shown.update()
        self.begun = True
        self.shown.set_description(f"bench: {what}")


def run(args: argparse.Namespace) -> int:
    load_before = os.getloadavg()
    result: dict[str, Any] = {"events": args.events, "principals": args.principals, "partitions": args.partitions,
                              "crc32c": crc32c_check(), "detectors": native.status}
    weeks = weeks_for_latency(args.events, args.principals, args.latency_seconds)
    events = recent_history(args.events, args.principals, args.seed, weeks_before=weeks)
    steps = bar(6 + 4 * RUNS - 1, "bench", unit="step")
    step = Steps(steps)
    topics = create_topics(args.bootstrap_servers, args.partitions)
    try:
        started = time.perf_counter()
        from stream.simulate import produce_to_kafka

        step("pre-filling the topics")
        produce_to_kafka(events, args.bootstrap_servers, topics["access"], topics["permission"])
        result["prefill_seconds"] = round(time.perf_counter() - started, 2)

        def fresh(group: str) -> Settings:  # every run reads the topics from the start, in a group of its own
            return settings_for(args.bootstrap_servers, topics, f"{group}-{uuid.uuid4().hex[:8]}")

        timeout_s = 120 + args.events / 1000
        bare: list[dict[str, Any]] = []
        tuned: list[dict[str, Any]] = []
        floor: list[dict[str, Any]] = []
        earlier: list[dict[str, Any]] = []
        for round_ in range(RUNS):  # (b)'s last run goes on into (c), below
            step(f"round {round_ + 1} of {RUNS}: (a) bare consumer")
            bare.append(spawned(bare_consumer, fresh("pwbench-bare"), args.events, timeout_s))
            step(f"round {round_ + 1} of {RUNS}: (a') tuned bare consumer")
            tuned.append(spawned(tuned_bare_consumer, fresh("pwbench-tuned"), args.events, timeout_s))
            step(f"round {round_ + 1} of {RUNS}: (b0) service without detectors")
            floor.append(spawned(run_service, fresh("pwfloor"), args.events, []))
            if round_ < RUNS - 1:
                step(f"round {round_ + 1} of {RUNS}: (b) service")
                earlier.append(spawned(run_service, fresh("pwbench"), args.events))
        result["bare"], result["bare_tuned"], result["floor"] = fastest(bare), fastest(tuned), fastest(floor)
        latency_args = {"background": bench_latency.templates(events), "probe_rate": args.probe_rate,
                        "seconds": args.latency_seconds, "libs": args.kafka_libs}
        del events
        step(f"round {RUNS} of {RUNS}: (b) service, then (c) latency")
        last, result["latency"], result["service_peak_rss_mb"] = spawned(
            run_pipeline, fresh("pwbench"), args.events, latency_args,
            max((r["events_per_s"] for r in earlier), default=0.0))
        result["pipeline"] = fastest([*earlier, last])
    finally:
        delete_topics(args.bootstrap_servers, topics)
    result.update(ratios(result))
    catchup_events = args.catchup_events or (QUICK_CATCHUP_EVENTS if args.events <= QUICK_EVENTS else CATCHUP_EVENTS)
    step(f"(f) catch-up on {catchup_events:,} events")
    result["catchup"] = bench_catchup.phase(args.bootstrap_servers, catchup_events, args.catchup_partitions,
                                            prefill_with=spawned)
    step("in memory, no Kafka")
    result["in_memory"] = spawned(in_memory, args.events, args.principals, args.seed, weeks, args.partitions)
    state_principals = args.state_principals or (
        QUICK_STATE_PRINCIPALS if args.events <= QUICK_EVENTS else STATE_PRINCIPALS)
    step(f"state of {state_principals:,} principals")
    result["state"] = state_bytes_per_principal(state_principals)
    steps.close()
    result["peak_rss_mb"] = peak_rss_mb()
    result["load_average"] = {"before": [round(x, 2) for x in load_before],
                              "after": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count()}
    with open(args.output, "wb") as fh:
        fh.write(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
    print(table(result))
    print(f"result written to {args.output}", file=sys.stderr)
    return 0 if "error" not in result["latency"] else 1
