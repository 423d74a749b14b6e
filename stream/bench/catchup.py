"""Catching up: the service started cold on a backlog, against a bare consumer tuned for throughput.

``python -m stream.bench.catchup --bootstrap-servers HOST:PORT [--events 500000] [--partitions 2]``
pre-fills fresh topics with a simulated history (``--keep FILE``: only that, the topics kept; ``--backlog
FILE``: over those, so that two builds are measured on one backlog), then times, each in a fresh spawned process and
from the moment the process is asked for until it is done (start-up, group join and restore
included), the yardstick and the service in turn, :data:`ROUNDS` times:

- **bare**: kafka-python reading the backlog and decoding each record with orjson, nothing else,
  tuned for throughput (``max_poll_records`` 5000, 10 MiB partition fetches);
- **service**: ``privwatch run`` as deployed (every detector, snapshots of its state), until every
  record is handled and its offsets committed.

The fastest run of each counts; the ratio service/bare is the catch-up target's measure.
``privwatch bench`` runs the same as its phase (f) (:func:`phase`).
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import orjson

#: rounds of (bare, service); the fastest run of each counts
ROUNDS = 2
#: the simulated organisation's size and seed (issue 32 measured 2,000 principals, seed 11)
PRINCIPALS = 2000
SEED = 11
#: the catch-up target: the service reaches at least this share of the yardstick's rate
TARGET = 0.5
#: the yardstick's consumer settings: throughput first
TUNED = {"max_poll_records": 5000, "max_partition_fetch_bytes": 10 << 20, "fetch_min_bytes": 1 << 20,
         "fetch_max_wait_ms": 100}


def _timed(fn: Any, *args: Any) -> dict[str, Any]:
    """``fn(*args)`` in a fresh spawned process; its result with ``seconds`` from asking to done."""
    context = multiprocessing.get_context("spawn")
    started = time.time()
    with ProcessPoolExecutor(1, mp_context=context) as pool:
        result: dict[str, Any] = pool.submit(fn, *args).result()
    result["seconds"] = round(result.pop("done_at") - started, 3)
    result["cpu_s"] = round(result["cpu_s"], 3)
    if "first_at" in result:  # start-up: from asking for the process to its first record handled
        result["start_s"] = round(result.pop("first_at") - started, 3)
    return result


def bare(settings: Any, n: int, timeout_s: float) -> dict[str, Any]:
    """The yardstick: read and decode ``n`` records, nothing else."""
    from stream.kafka import clients

    consumer = clients.consumer(settings, group_id=f"pwcatchup-bare-{uuid.uuid4().hex[:8]}", **TUNED)
    consumer.subscribe([settings.access_topic, settings.permission_topic])
    seen, loads, deadline = 0, orjson.loads, time.monotonic() + timeout_s
    first_at: float | None = None
    try:
        while seen < n and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=200, max_records=TUNED["max_poll_records"]).values():
                for record in records:
                    loads(record.value)
                seen += len(records)
            if seen and first_at is None:
                first_at = time.time()
        done_at = time.time()
    finally:
        consumer.close(autocommit=False)
    if seen < n:
        raise RuntimeError(f"bare consumer read only {seen} of {n} records in {timeout_s:.0f} s")
    return {"records": seen, "done_at": done_at, "first_at": first_at, "cpu_s": time.process_time()}


def service(settings: Any, n: int) -> dict[str, Any]:
    """``privwatch run`` from cold until ``n`` records are handled and their offsets committed."""
    from stream.bench.hooks import BenchHooks, bench_service

    hooks = BenchHooks(target=n)
    svc = bench_service(settings, hooks)
    svc.run(max_idle_s=60.0)  # stops once n are handled; run() then flushes, snapshots and commits
    done_at = time.time()
    if svc.handled_total < n:
        raise RuntimeError(f"service handled only {svc.handled_total} of {n} records")
    committed = sum(svc.checkpoint.committed.values())
    steady = hooks.rate.result()
    return {"records": svc.handled_total, "committed_offsets": committed, "done_at": done_at,
            "cpu_s": time.process_time(),
            "first_at": done_at - (time.perf_counter() - hooks.rate.t_first),
            "handling_events_per_s": steady["events_per_s"], "alerts": hooks.alerts_published}


def measure(settings_for: Any, n: int, rounds: int = ROUNDS) -> dict[str, Any]:
    """Rounds of (bare, service), each on a fresh group; the fastest of each, and their ratio."""
    runs: dict[str, list[dict[str, Any]]] = {"bare": [], "service": []}
    timeout_s = 120 + n / 1000
    for _ in range(rounds):
        runs["bare"].append(_timed(bare, settings_for("pwcatchup-bare"), n, timeout_s))
        runs["service"].append(_timed(service, settings_for("pwcatchup"), n))
    out: dict[str, Any] = {"events": n}
    for name, results in runs.items():
        best = min(results, key=lambda r: r["seconds"])
        out[name] = {**best, "events_per_s": round(n / best["seconds"], 1),
                     "runs_seconds": [r["seconds"] for r in results],
                     # CPU per event (the process's, every thread, start-up included): steadier than the
                     # rate on a machine shared with other jobs
                     "runs_cpu_us_per_event": [round(r["cpu_s"] / n * 1e6, 2) for r in results]}
    out["ratio"] = round(out["service"]["events_per_s"] / out["bare"]["events_per_s"], 3)
    return out


def prefill(bootstrap: str, partitions: int, events: int, principals: int, seed: int) -> dict[str, str]:
    """Fresh topics (:func:`stream.bench.topics.create_topics`) holding the first ``events`` of a simulated
    history; deleted again if filling them fails."""
    from stream.bench.topics import create_topics, delete_topics
    from stream.simulate import produce_to_kafka, recent_history

    topics = create_topics(bootstrap, partitions)
    try:
        produce_to_kafka(recent_history(events, principals, seed), bootstrap, topics["access"], topics["permission"])
    except BaseException:
        delete_topics(bootstrap, topics)
        raise
    return topics


def phase(bootstrap: str, events: int, partitions: int, principals: int = PRINCIPALS, seed: int = SEED,
          rounds: int = ROUNDS, prefill_with: Callable[..., dict[str, str]] | None = None) -> dict[str, Any]:
    """The whole measure on topics of its own: pre-fill them, time the rounds, delete them.

    ``prefill_with(prefill, *args)`` runs :func:`prefill` (``privwatch bench`` runs it in a process of
    its own, so that the history's dicts do not stay in the bench's heap); by default, in this one.
    """
    from stream.bench.topics import delete_topics

    args = (bootstrap, partitions, events, principals, seed)
    topics = prefill_with(prefill, *args) if prefill_with else prefill(*args)
    try:
        result = measure_on(bootstrap, topics, events, rounds)
    finally:
        delete_topics(bootstrap, topics)
    return {**result, "partitions": partitions, "principals": principals, "target": TARGET}


def measure_on(bootstrap: str, topics: dict[str, str], events: int, rounds: int = ROUNDS) -> dict[str, Any]:
    """:func:`measure` over topics already holding the backlog (each run on a fresh group)."""
    from stream.bench.topics import settings_for

    return measure(lambda group: settings_for(bootstrap, topics, f"{group}-{uuid.uuid4().hex[:8]}"), events, rounds)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m stream.bench.catchup", description=__doc__.split("\n")[0])
    p.add_argument("--bootstrap-servers", default="127.0.0.1:9092")
    p.add_argument("--events", type=int, default=500_000)
    p.add_argument("--partitions", type=int, default=2)
    p.add_argument("--principals", type=int, default=PRINCIPALS)
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--rounds", type=int, default=ROUNDS)
    p.add_argument("--keep", type=Path, metavar="FILE",
                   help="pre-fill only: write the topics to FILE as JSON and keep them (delete them yourself)")
    p.add_argument("--backlog", type=Path, metavar="FILE",
                   help="measure over the topics --keep wrote (the same backlog for an A/B of two builds)")
    args = p.parse_args(argv)
    if args.keep:
        topics = prefill(args.bootstrap_servers, args.partitions, args.events, args.principals, args.seed)
        args.keep.write_bytes(orjson.dumps({"topics": topics, "events": args.events, "partitions": args.partitions}))
        print(orjson.dumps(topics).decode())
        return 0
    if args.backlog:
        kept = orjson.loads(args.backlog.read_bytes())
        result = {**measure_on(args.bootstrap_servers, kept["topics"], kept["events"], args.rounds),
                  "partitions": kept["partitions"], "target": TARGET}
    else:
        result = phase(args.bootstrap_servers, args.events, args.partitions, args.principals, args.seed, args.rounds)
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
