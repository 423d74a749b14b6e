"""``privwatch bench`` in quick mode against the test broker: the result has every field, with sane values.
Also its latency phase's load generator, Kafka's console producer, on its own.

Never asserts on speed: the machine is shared and the numbers are noisy.
"""

from __future__ import annotations

import os

import orjson
import pytest
from kafka_helpers import read_all

from stream.bench.catchup import ROUNDS
from stream.bench.cli import QUICK_CATCHUP_EVENTS
from stream.bench.latency import probe_every
from stream.bench.stages import STAGES
from stream.cli import build_parser

pytestmark = pytest.mark.integration


def test_quick_bench_writes_a_complete_result(kafka_bootstrap: str, tmp_path, capsys) -> None:
    out = tmp_path / "bench.json"
    args = build_parser().parse_args(["bench", "--bootstrap-servers", kafka_bootstrap, "--events", "20000",
                                      "--principals", "200", "--latency-seconds", "5", "--output", str(out)])
    assert args.func(args) == 0
    r = orjson.loads(out.read_bytes())
    assert r["crc32c"]["used_by_kafka_python"] is True
    for phase in ("bare", "bare_tuned", "floor", "pipeline"):  # three runs each, in fresh processes; the fastest counts
        assert r[phase]["events_per_s"] == max(r[phase]["runs_events_per_s"]) > 0
        assert len(r[phase]["runs_events_per_s"]) == 3
    assert r["pipeline"]["detectors"] > 0 and r["floor"]["detectors"] == 0  # (b0) really ran without detectors
    # records released after waiting for the other input while reading the backlog: reported for both
    # (142-148 per 200k-event run before the merger waited for a topic catching up, 0 since)
    assert r["pipeline"]["merge_timeouts"] >= 0 and r["floor"]["merge_timeouts"] >= 0
    assert r["floor"]["alerts"] == 0 and r["floor_ratio"] > 0
    assert r["ratio"] == round(r["pipeline"]["events_per_s"] / r["bare"]["events_per_s"], 3) > 0
    assert r["ratio_of_medians"] > 0
    assert r["ratio_to_tuned_bare"] == round(r["pipeline"]["events_per_s"] / r["bare_tuned"]["events_per_s"], 3) > 0
    # (a') runs with the service's allocator settings: fetch buffers are not faulted back in each time
    # (20k events: 405-430 faults per 1k for (a), 13-79 for (a'), the heap still growing to its size)
    assert r["bare_tuned"]["page_faults_per_1k_events"] * 2 < r["bare"]["page_faults_per_1k_events"]
    # (c) ran at half the fastest (b), whichever run that was (the latency phase follows the last one)
    assert r["latency"]["rate_events_per_s"] == round(r["pipeline"]["events_per_s"] / 2.0, 1)
    for phase in ("bare", "bare_tuned", "floor", "pipeline"):  # the process's CPU time over the counted span
        assert r[phase]["cpu_us_per_event"] > 0 and 0 < r[phase]["cpu_busy"] < 4
    mem = r["in_memory"]  # the same events through the same loop, without Kafka
    assert mem["events"] == mem["handled"] == r["events"] and mem["produced"] > 0
    assert mem["events_per_s"] > 0 and mem["decode_us"] > 0 and mem["engine_us"] > 0
    lat = r["latency"]
    # one probe in every rate/probe-rate records sent (10 probes/s at the requested rate), however bursty
    sent = round(lat["achieved_rate_events_per_s"] * 5)
    assert abs(lat["probes_sent"] - sent // probe_every(lat["rate_events_per_s"], 10.0)) <= 1
    assert lat["generator"] == "console-producer" and lat["ready_s"] > 0  # Kafka's console producer sent them
    assert 0 < lat["service_cpu_busy"] < 4  # the service's CPU share over the measured window
    assert lat["merge_timeouts"] >= 0  # records the service released after waiting for the other input
    hold = lat["merge_hold"]  # the service's merge-hold histogram over the phase (one record in 16)
    assert hold["sampled"] > 0 and 0 <= hold["over_500ms"] <= hold["over_100ms"] <= hold["sampled"]
    machine = lat["machine"]  # the whole machine over the same window (Linux: /proc/stat)
    assert machine["cpus"] == os.cpu_count() and 0 < machine["cpus_busy"] <= machine["cpus"] + 0.01
    assert 0 <= machine["cpus_stolen"] <= machine["cpus"]
    assert lat["started_at"] > 1.7e9  # the window's start (epoch s), to line up with the service's logs
    timeline = lat["timeline"]  # second by second over the 5 s window
    assert len(timeline) in (5, 6) and [row["t"] for row in timeline] == sorted(row["t"] for row in timeline)
    assert all(0 <= row["service"] < 4 and 0 <= row["machine"] <= machine["cpus"] + 0.01 for row in timeline)
    assert sum(row["service"] for row in timeline) > 0
    # whether a background snapshot's child ran in each second; those that overlapped the window
    assert all(type(row["snapshot"]) is bool for row in timeline) and type(lat["snapshots"]) is list
    assert all(s["from_s"] < len(timeline) and (s["to_s"] is None or s["to_s"] > max(0.0, s["from_s"]))
               and (s["to_s"] is not None or s["child_cpu_s"] is None) for s in lat["snapshots"])
    worst = lat["slowest_second"]  # each probe counts in the interval it was sent in: the slowest is in one
    assert worst["probe_max_ms"] == lat["max_ms"] and worst in [{**row, "median": worst["median"]} for row in timeline]
    assert lat["probe_alerts_received"] > 0
    assert lat["p99_ms"] >= lat["p50_ms"] > 0
    assert len(lat["latencies_ms"]) == lat["probe_alerts_received"]
    stages = lat["stages_ms"]  # each probe's latency split at its record's and its alert's timestamps
    assert stages["probes"] == lat["probe_alerts_received"]  # every probe was read back from its topic
    assert stages["service"]["p50"] > 0 and stages["delivery"]["p50"] >= 0
    assert stages["slowest"]["total"] == pytest.approx(lat["max_ms"], abs=0.5)
    assert stages["slowest"]["total"] == pytest.approx(sum(stages["slowest"][s] for s in STAGES), abs=0.5)
    assert lat["alerts"] >= lat["probe_alerts_received"]  # every alert of the phase, the probes' among them
    kept_up = lat["achieved_rate_events_per_s"] >= 0.95 * lat["rate_events_per_s"]
    assert lat["generator_kept_up"] is kept_up
    assert r["state"]["principals"] > 0 and r["state"]["state_bytes_per_principal"] > 0 and r["state"]["restored_ok"]
    assert r["state"]["stall_p99_ms"] > 0 and r["state"]["restore_s"] >= 0
    assert r["peak_rss_mb"] > 0 and r["service_peak_rss_mb"] > 0  # the bench's process, the service's
    assert len(r["load_average"]["before"]) == 3
    c = r["catchup"]  # (f): the cold service and the tuned bare consumer over one backlog, start-up included
    assert c["events"] == QUICK_CATCHUP_EVENTS and c["partitions"] == 2 and c["target"] == 0.5
    assert c["bare"]["records"] == c["service"]["records"] == c["service"]["committed_offsets"] == c["events"]
    for side in ("bare", "service"):  # each side's fastest run counts
        assert len(c[side]["runs_seconds"]) == ROUNDS and 0 < c[side]["start_s"] < c[side]["seconds"]
        assert c[side]["events_per_s"] == round(c["events"] / min(c[side]["runs_seconds"]), 1) > 0
    assert c["ratio"] == round(c["service"]["events_per_s"] / c["bare"]["events_per_s"], 3) > 0
    printed = capsys.readouterr().out
    assert "ratio (b)/(a)" in printed and "(b0) privwatch, no detectors" in printed
    assert "in memory, no Kafka" in printed and "CPU per event (busy)" in printed
    assert f"probes up to {worst['probe_max_ms']:.0f} ms" in printed
    assert f"ratio {c['ratio']:.3f} (target >= 0.5) over 20,000 events" in printed
    assert ("the load generator sent only" in printed) is not kept_up


def test_console_sender_delivers_every_record_to_kafka_pythons_partition(kafka_bootstrap: str, fresh_topics) -> None:
    """The latency phase's generator: each record, unchanged, in the partition kafka-python's default
    partitioner picks for its key (murmur2), so access and permission topics stay co-partitioned."""
    from kafka.partitioner.default import murmur2

    from stream.bench.sender import DEFAULT_LIBS, ConsoleSender

    topics = fresh_topics(3, ("access", "permission"))
    sender = ConsoleSender(kafka_bootstrap, (topics["access"], topics["permission"]), DEFAULT_LIBS)
    sent = {(i % 2, f"u-{i % 7}".encode(), orjson.dumps({"n": i, "text": "tab\there, line\nthere, é"}))
            for i in range(40)}
    for topic, key, value in sent:
        sender.send(topic, key, value)
    with pytest.raises(ValueError, match="tab or a newline"):
        sender.send(0, b"u\t1", b"{}")
    sender.close()
    got = {(i, r.key, r.value, r.partition) for i, role in enumerate(("access", "permission"))
           for r in read_all(kafka_bootstrap, topics[role], expect=20)}
    assert got == {(t, k, v, (murmur2(k) & 0x7FFFFFFF) % 3) for t, k, v in sent}


def test_console_sender_needs_the_kafka_tools_jar(tmp_path) -> None:
    from stream.bench.sender import ConsoleSender

    with pytest.raises(RuntimeError, match="no kafka-tools jar"):
        ConsoleSender("127.0.0.1:9", ("a", "p"), tmp_path)


def test_console_sender_reports_a_producer_that_exits() -> None:
    import time

    from stream.bench.sender import DEFAULT_LIBS, ConsoleSender

    sender = ConsoleSender("no-port-here", ("a", "p"), DEFAULT_LIBS)  # the producer refuses the address
    deadline = time.monotonic() + 60
    with pytest.raises(RuntimeError, match=r"exit codes \[(1, .*|None, 1)\].*valid host:port"):
        while time.monotonic() < deadline:
            sender.check()
            time.sleep(0.1)
    sender.kill()


def test_catch_up_times_the_cold_service_against_a_tuned_bare_consumer(kafka_bootstrap: str, capsys) -> None:
    """``python -m stream.bench.catchup``: both read the whole backlog from process start; the service
    commits every offset; the ratio is service/bare."""
    from stream.bench import catchup

    assert catchup.main(["--bootstrap-servers", kafka_bootstrap, "--events", "6000", "--principals", "60",
                         "--rounds", "1"]) == 0
    r = orjson.loads(capsys.readouterr().out)
    assert r["bare"]["records"] == r["service"]["records"] == r["service"]["committed_offsets"] == 6000
    for side in ("bare", "service"):
        assert 0 < r[side]["start_s"] < r[side]["seconds"] and len(r[side]["runs_seconds"]) == 1
    assert r["ratio"] == round(r["service"]["events_per_s"] / r["bare"]["events_per_s"], 3) > 0
    assert all(us > 0 for side in ("bare", "service") for us in r[side]["runs_cpu_us_per_event"])


def test_catch_up_over_a_kept_backlog(kafka_bootstrap: str, capsys, tmp_path) -> None:
    """``--keep FILE`` pre-fills and keeps the topics; ``--backlog FILE`` measures over them (an A/B of two
    builds on one backlog), as often as asked."""
    from stream.bench import catchup
    from stream.bench.topics import delete_topics

    kept = tmp_path / "backlog.json"
    common = ["--bootstrap-servers", kafka_bootstrap, "--events", "3000", "--principals", "40"]
    assert catchup.main([*common, "--keep", str(kept)]) == 0
    topics = orjson.loads(kept.read_bytes())["topics"]
    try:
        for _ in range(2):
            capsys.readouterr()
            assert catchup.main(["--bootstrap-servers", kafka_bootstrap, "--backlog", str(kept), "--rounds", "1"]) == 0
            r = orjson.loads(capsys.readouterr().out)
            assert r["bare"]["records"] == r["service"]["committed_offsets"] == 3000 and r["partitions"] == 2
    finally:
        delete_topics(kafka_bootstrap, topics)
