"""Durable detector state against the real broker: kill -9 under load, broker restart, corrupt
snapshots, and the co-partitioning check."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka_helpers import committed, principal_key, produce
from state_helpers import (
    KEY,
    UNSHARED,
    Running,
    alert_ids,
    cli_args,
    input_counts,
    latest_records,
    reference_alert_ids,
    run_to_end,
    settings,
    snapshot_counts,
    spawn,
    state_docs,
    wait_until,
)

from stream.errors import TopologyError
from stream.state import snapshot

pytestmark = pytest.mark.integration


def _committed_total(bootstrap: str, group: str, topic: str) -> int:
    return sum(committed(bootstrap, group, [topic]).values())


def test_kill_9_repeatedly_counts_every_event_once_and_loses_no_alert(
        kafka_bootstrap, fresh_topics, group_id, tmp_path):
    topics = fresh_topics(n_partitions=3)
    ref_alerts = fresh_topics(n_partitions=3, names=("alerts",))["alerts"]
    docs = state_docs(30_000, 500)
    # The input arrives in quarters, the next one only after each kill: every kill lands mid-stream
    # however fast the service is, and the last quarter arrives while nothing is running.
    quarters = [docs[i * len(docs) // 4:(i + 1) * len(docs) // 4] for i in range(4)]
    produce(kafka_bootstrap, topics["access"], quarters[0], principal_key)
    s = settings(kafka_bootstrap, topics, group_id, **UNSHARED)  # the same alerts however the partitions interleave
    log = tmp_path / "service.log"
    rnd = random.Random(5)
    progress = 0
    for quarter in quarters[1:]:
        proc = spawn(cli_args(s), log)
        try:
            # let it restore and get some way further (offsets move with snapshots), then kill -9
            target = progress + 1500
            wait_until(lambda: _committed_total(kafka_bootstrap, group_id, topics["access"]) > target,  # noqa: B023
                       60, "progress before the kill")
            time.sleep(rnd.uniform(0.2, 1.5))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        assert proc.returncode == -signal.SIGKILL
        progress = _committed_total(kafka_bootstrap, group_id, topics["access"])
        assert progress < len(docs), "the kill should land mid-stream"
        produce(kafka_bootstrap, topics["access"], quarter, principal_key)
    proc = spawn([*cli_args(s), "--max-idle-s=3"], log)
    assert proc.wait(timeout=150) == 0, log.read_text()[-3000:]
    text = log.read_text()
    # the offsets committed before each kill moved with periodic checkpoints, written a slice per poll
    # (stream.service.snapshots): what was restored after each kill -9 is what they wrote
    assert text.count("state restored") >= 3, text[-3000:]
    assert _committed_total(kafka_bootstrap, group_id, topics["access"]) == len(docs)

    assert snapshot_counts(kafka_bootstrap, topics, group_id) == dict(input_counts(docs))
    expected = reference_alert_ids(kafka_bootstrap, topics, ref_alerts, **UNSHARED)
    assert len(expected) > 10
    assert alert_ids(kafka_bootstrap, topics["alerts"]) == expected


def test_broker_restart_while_running_loses_nothing(kafka_broker, kafka_bootstrap, fresh_topics, group_id):
    topics = fresh_topics(n_partitions=3)
    docs = state_docs(12_000, 300, seed=3)
    produce(kafka_bootstrap, topics["access"], docs, principal_key)
    running = Running(settings(kafka_bootstrap, topics, group_id), max_idle_s=8)
    wait_until(lambda: running.service.handled_total > 1500, 90, "some progress")
    kafka_broker.restart()
    running.join(timeout_s=150)
    assert running.service.handled_total >= len(docs)
    assert _committed_total(kafka_bootstrap, group_id, topics["access"]) == len(docs)
    assert snapshot_counts(kafka_bootstrap, topics, group_id) == dict(input_counts(docs))


def test_corrupt_state_is_refused_with_a_metric_and_rebuilt_from_history(kafka_bootstrap, fresh_topics, group_id,
                                                                         caplog):
    topics = fresh_topics(n_partitions=3)
    docs = state_docs(9_000, 200, seed=9)
    s = settings(kafka_bootstrap, topics, group_id)
    for part in (docs[:3000], docs[3000:6000]):  # two runs: at least two generations per partition
        produce(kafka_bootstrap, topics["access"], part, principal_key)
        run_to_end(s)
    # partition 0: flip a byte in the newest manifest's body; partition 1: signature-less forgeries
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    p0 = latest_records(kafka_bootstrap, topics["state"], 0)
    slots = {k: v for k, v in p0.items() if k.startswith(f"{group_id}/p0/manifest".encode()) and v}
    newest_key = max(slots, key=lambda k: snapshot.claimed_generation(slots[k]))
    value = slots[newest_key]
    at = value.index(b'"offsets"') + 12
    producer.send(topics["state"], key=newest_key, value=value[:at] + bytes([value[at] ^ 1]) + value[at + 1:],
                  partition=0)
    p1 = latest_records(kafka_bootstrap, topics["state"], 1)
    for key, value in p1.items():
        if key.startswith(f"{group_id}/p1/manifest".encode()) and value:
            forged = snapshot.MAGIC + value.split(b"\n", 3)[3]  # the body without its signature
            producer.send(topics["state"], key=key, value=forged, partition=1)
    producer.flush()
    producer.close()

    produce(kafka_bootstrap, topics["access"], docs[6000:], principal_key)
    with caplog.at_level("ERROR", logger="stream.state.store"):
        running = run_to_end(s)
    refusals = [line for line in caplog.text.splitlines() if "refused" in line]
    assert running.value("privwatch_state_restores_total", outcome="refused") == 2, refusals
    assert running.value("privwatch_state_restores_total", outcome="restored") == 1  # partition 2
    # partition 0's older manifest verifies, but the group's commits name the newer generation: going
    # back to it would be a rollback (the same as an attacker re-publishing it). Neither partition starts
    # cold: both are rebuilt from the input's history up to the committed offsets, then go on from there
    assert running.value("privwatch_state_restores_total", outcome="bootstrap") == 2
    assert running.value("privwatch_state_restores_total", outcome="cold") == 0
    assert "state refused partition=0" in caplog.text and "signature" in caplog.text
    assert "state refused partition=1" in caplog.text
    assert _committed_total(kafka_bootstrap, group_id, topics["access"]) == len(docs)
    # every event counted exactly once: the history before the commits, and what followed
    assert snapshot_counts(kafka_bootstrap, topics, group_id) == dict(input_counts(docs))


def _partition_principals(bootstrap: str, topic: str, partition: int) -> set[str]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    tp = TopicPartition(topic, partition)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    end = consumer.end_offsets([tp])[tp]
    principals = set()
    while consumer.position(tp) < end:
        for record in consumer.poll(timeout_ms=1000).get(tp, []):
            principals.add(record.key.decode())
    consumer.close()
    return principals


def test_inputs_not_copartitioned_exit_5(kafka_bootstrap, fresh_topics, group_id):
    topics = fresh_topics(n_partitions=3)
    topics["permission"] = fresh_topics(n_partitions=2, names=("permission",))["permission"]
    s = settings(kafka_bootstrap, topics, group_id)
    proc = subprocess.run([sys.executable, "-m", "stream", *cli_args(s), "--max-idle-s=1"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == TopologyError.exit_code == 5, proc.stderr[-2000:]
    assert "not co-partitioned" in proc.stderr and f"{topics['permission']}=2" in proc.stderr


def test_missing_state_topic_exit_5(kafka_bootstrap, fresh_topics, group_id):
    topics = fresh_topics(n_partitions=3, names=("access", "permission", "alerts", "dead-letter", "feedback"))
    topics["state"] = "pw-does-not-exist.state"
    s = settings(kafka_bootstrap, topics, group_id)
    proc = subprocess.run([sys.executable, "-m", "stream", *cli_args(s), "--max-idle-s=1"],
                          capture_output=True, text=True, timeout=90)
    assert proc.returncode == TopologyError.exit_code, proc.stderr[-2000:]
    assert "missing topic(s): state (pw-does-not-exist.state)" in proc.stderr
    assert KEY not in proc.stderr
