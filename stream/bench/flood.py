"""What a flood of forged verdicts costs the service: ``python -m stream.bench.flood``.

The real service loop runs in memory (:mod:`stream.testing`) over a simulated organisation, with the
feedback topic played by :class:`FeedbackTopic`, three ways: no feedback records; ``--forged N``
forged records already on the topic at start (read by the start-up catch-up); and the same records
arriving while the loop runs (read within the reader's time budget). It prints CPU seconds and
events/s for each, the catch-up's cost per forged record, and the memory the records leave behind
(tracemalloc, in a separate pass). The forgeries are those an insider who can write the topic (and
read the alerts topic) can make: unsigned, unknown analysts, made-up alert ids, and real alert ids
under a configured analyst's name with a signature of another key (``--costly`` of them: only these
reach the signature check, the one expensive step).
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
from itertools import cycle
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from stream.feedback.setup import feedback_reader
from stream.feedback.signing import b64, generate, public_text, sign, verdict_record
from stream.ops.gctune import loop_gc
from stream.settings import Settings
from stream.testing import in_memory

TOPIC = "privwatch.feedback"


class Record(NamedTuple):
    value: bytes
    timestamp: int
    partition: int
    offset: int


class FeedbackTopic:
    """A one-partition feedback topic for :class:`~stream.feedback.reader.FeedbackReader`, read from the
    start. ``hidden`` records are there but not yet readable until :meth:`release` (records arriving
    while the loop runs, made beforehand so that making them is not timed)."""

    def __init__(self, values: list[bytes], appended_ms: int, hidden: bool = False) -> None:
        from kafka import TopicPartition

        self.tp = TopicPartition(TOPIC, 0)
        # the values only (bytes, which the garbage collector does not track): a record is made when
        # polled, as kafka-python makes one per fetched record, so the fake adds no collection work
        self.values = values
        self.appended_ms = appended_ms
        self.end = 0 if hidden else len(values)
        self.cursor = 0

    def release(self) -> None:
        self.end = len(self.values)

    def partitions_for_topic(self, topic: str) -> set[int]:
        return {0}

    def assign(self, partitions: list[Any]) -> None:
        pass

    def seek_to_beginning(self, *partitions: Any) -> None:
        self.cursor = 0

    def assignment(self) -> set[Any]:
        return {self.tp}

    def end_offsets(self, partitions: list[Any]) -> dict[Any, int]:
        return {self.tp: self.end}

    def position(self, tp: Any) -> int:
        return self.cursor

    def poll(self, timeout_ms: int = 0, max_records: int = 500) -> dict[Any, list[Record]]:
        stop = min(self.end, self.cursor + max_records)
        batch = [Record(self.values[i], self.appended_ms, 0, i) for i in range(self.cursor, stop)]
        self.cursor = stop
        return {self.tp: batch} if batch else {}

    def close(self) -> None:
        pass


def forged_records(n: int, alert_ids: list[str], analyst: str, key_id: str, now: float, costly: int) -> list[bytes]:
    """``n`` forged verdict records; ``costly`` of them name a real alert and analyst with a wrong signature."""
    mallory = generate()
    garbage = b64(bytes(64))
    made_up = [aid.rsplit(":", 1)[0] + ":0123456789abcdef" for aid in alert_ids] or ["volume:u:e:0123456789abcdef"]
    kinds = cycle(("unsigned", "unknown_analyst", "not_emitted"))
    out = []
    for i in range(n):
        kind = "bad_signature" if i < costly else next(kinds)
        target = alert_ids[i % len(alert_ids)] if kind == "bad_signature" else made_up[i % len(made_up)]
        who, kid = ("mallory", "mallory-1") if kind == "unknown_analyst" else (analyst, key_id)
        doc = verdict_record(target, "benign", "detector", who, kid, now, 30)
        if kind == "bad_signature":
            doc = sign(doc, mallory)
        elif kind != "unsigned":  # refused before the signature is looked at: any will do (signing costs)
            doc["signature"] = garbage
        out.append(orjson.dumps(doc))
    return out


def settings_with_analysts(directory: Path) -> tuple[Settings, Any, str]:
    """Settings with one configured analyst (her key returned) and an alert-id key."""
    key = generate()
    analysts = directory / "analysts.toml"
    analysts.write_text(f'[[analyst]]\nname = "alice"\n'
                        f'keys = [{{id = "alice-1", public_key = "{public_text(key)}"}}]\n')
    settings = Settings(metrics_port=0, analysts_file=str(analysts), alert_id_key="flood-test-alert-id-key-32-bytes!")
    return settings, key, "alice-1"


class Run(NamedTuple):
    cpu_s: float
    catch_up_s: float
    events: int
    alerts: list[bytes]
    refused: dict[str, float]
    service: Any


def run(lines: list[bytes], settings: Settings, flood: list[bytes], partitions: int = 2,
        during: bool = False) -> Run:
    """The service loop over ``lines`` with ``flood`` on the feedback topic at start (or, ``during``,
    arriving as the loop starts, so the budgeted polls read it)."""
    service, harness = in_memory(lines, partitions, settings)
    topic = FeedbackTopic(flood, appended_ms=int(time.time() * 1000), hidden=during)
    service.feedback_reader = feedback_reader(settings, topic, service.feedback, service.metrics)
    started = time.process_time()
    service.feedback_reader.catch_up(timeout_s=3600.0)
    caught_up = time.process_time()
    topic.release()
    with loop_gc():  # the service's collector settings, as Service.run has them
        harness.run(service)
    ended = time.process_time()
    refused = {s.labels["reason"]: s.value for m in harness.registry.collect()
               if m.name == "privwatch_feedback_refused" for s in m.samples
               if s.name.endswith("_total") and s.value}
    alerts = [value for topic_name, _, value, _ in harness.producer.sent if topic_name == settings.alerts_topic]
    return Run(ended - started, caught_up - started, service.handled_total, alerts, refused, service)


def retained_bytes(lines: list[bytes], settings: Settings, flood: list[bytes]) -> tuple[int, int]:
    """Bytes still allocated after the catch-up has read ``flood`` (the records themselves excluded, as
    they belong to the fake topic), and the peak while reading."""
    service, _ = in_memory(lines[:1], 1, settings)
    topic = FeedbackTopic(flood, int(time.time() * 1000))
    reader = feedback_reader(settings, topic, service.feedback, service.metrics)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    reader.catch_up(timeout_s=3600.0)
    after, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return after - before, peak - before


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stream.bench.flood", description=__doc__.split("\n\n")[0])
    parser.add_argument("--forged", type=int, default=100_000)
    parser.add_argument("--costly", type=int, default=0, help="how many forgeries carry a wrong signature")
    parser.add_argument("--principals", type=int, default=300)
    parser.add_argument("--days", type=int, default=21)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each kind; the median loop time is shown")
    args = parser.parse_args(argv)
    from stream.simulate import simulate

    events, _ = simulate(seed=1, principals=args.principals, days=args.days)
    lines = [orjson.dumps(e) for e in events]
    with tempfile.TemporaryDirectory() as tmp:
        settings, _, key_id = settings_with_analysts(Path(tmp))
        quiet = run(lines, settings, [])
        ids = [orjson.loads(a)["alert_id"] for a in quiet.alerts][:1000]
        flood = forged_records(args.forged, ids, "alice", key_id, time.time(), args.costly)
        results = {"no feedback": [], "flood at start": [], "flood while running": []}  # type: ignore[var-annotated]
        for _ in range(args.repeat):  # interleaved, so that a busy spell of the machine hits every kind
            results["no feedback"].append(run(lines, settings, []))
            results["flood at start"].append(run(lines, settings, flood))
            results["flood while running"].append(run(lines, settings, flood, during=True))
        kept, peak = retained_bytes(lines, settings, flood)
    print(f"{len(lines):,} events, {args.forged:,} forged records ({args.costly:,} with a wrong signature), "
          f"median of {args.repeat} interleaved runs (loop CPU time)")
    medians = {}
    for name, runs in results.items():
        result = sorted(runs, key=lambda r: r.cpu_s - r.catch_up_s)[len(runs) // 2]
        medians[name] = result
        loop_s = result.cpu_s - result.catch_up_s
        print(f"{name:20} catch-up {result.catch_up_s:6.2f} s, loop {loop_s:6.2f} s = {result.events / loop_s:8,.0f} "
              f"events/s; refused {sum(result.refused.values()):,.0f}")
    same = all(r.alerts == quiet.alerts for runs in results.values() for r in runs)
    print(f"catch-up per forged record: {medians['flood at start'].catch_up_s / max(1, args.forged) * 1e6:.1f} us; "
          f"same alerts in every run: {same}")
    print(f"memory after reading the flood: {kept / 1024:.0f} KiB retained, {peak / 1024:.0f} KiB peak")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
