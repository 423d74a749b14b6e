"""No output lost, nothing committed past one, against the real broker: an alerts topic that refuses
records or is deleted while the service runs, a dead letter too large for its topic, a record
stamped hours ahead, and the state topic's manifests rolled back. In each, what was consumed equals
what was processed plus what was dead-lettered, and each output topic holds what was counted."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest
from delivery_helpers import Running, assert_accounted, settings_for, value, wait_until
from factories import T0, access, routine_then_bulk
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic
from kafka_fixtures import _wait_for_leaders
from kafka_helpers import committed, principal_key, produce, read_all

from detectors.calibrate import PAGING_LEVELS
from stream.errors import OutputsUnsent
from stream.state import snapshot

pytestmark = pytest.mark.integration


def admin(bootstrap: str) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=bootstrap, client_id="privwatch-tests")


def set_topic_config(bootstrap: str, topic: str, **configs: str) -> None:
    client = admin(bootstrap)
    try:
        client.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic,
                                             configs={k.replace("_", "."): v for k, v in configs.items()})])
    finally:
        client.close()


def committed_total(bootstrap: str, settings: Any) -> int:
    return sum(committed(bootstrap, settings.group_id, [settings.access_topic, settings.permission_topic]).values())


def bulk_docs() -> list[dict[str, Any]]:
    docs = [d for p in ("u-r1", "u-r2", "u-r3") for d in routine_then_bulk(p, days=4, per_day=20)]
    return sorted(docs, key=lambda d: d["ts"])


def test_an_alerts_topic_that_refuses_records_stops_consumption_until_it_takes_them(
        kafka_bootstrap, fresh_topics, group_id):
    topics = fresh_topics(n_partitions=3)
    set_topic_config(kafka_bootstrap, topics["alerts"], max_message_bytes="200")
    docs = bulk_docs()
    produce(kafka_bootstrap, topics["access"], docs, principal_key)
    settings = settings_for(kafka_bootstrap, topics, group_id)
    run = Running(settings, max_idle_s=None)
    metrics, service = run.metrics, run.service
    wait_until(lambda: value(metrics, "privwatch_produce_failures_total", topic=topics["alerts"]) >= 1,
               what="a refused alert")
    wait_until(lambda: service.health.blocked is not None, what="consumption stopped")
    assert not service.health.is_ready() and value(metrics, "privwatch_ready") == 0
    held = committed_total(kafka_bootstrap, settings)
    time.sleep(2)  # retries go on (backoff), consumption and commits do not
    assert committed_total(kafka_bootstrap, settings) == held < len(docs)
    assert read_all(kafka_bootstrap, topics["alerts"]) == []
    set_topic_config(kafka_bootstrap, topics["alerts"], max_message_bytes="1048588")
    wait_until(lambda: committed_total(kafka_bootstrap, settings) == len(docs), timeout_s=90, what="catch-up")
    assert service.health.blocked is None and value(metrics, "privwatch_ready") == 1
    assert run.stop() == 0
    paging = [orjson.loads(r.value) for r in read_all(kafka_bootstrap, topics["alerts"])]
    assert {a["principal_id"] for a in paging if a["level"] in PAGING_LEVELS} == {"u-r1", "u-r2", "u-r3"}
    assert_accounted(kafka_bootstrap, settings, metrics, expect_consumed=len(docs))


def test_the_alerts_topic_deleted_while_running(kafka_bootstrap, fresh_topics, group_id):
    """Deleted: sends fail, consumption stops, a stop then exits 7 with nothing committed (and no
    snapshot taken) past the unsent alerts; recreated, a restart restores the state of before them and
    delivers them."""
    topics = fresh_topics(n_partitions=3)
    docs = bulk_docs()
    history, last = [d for d in docs if "bulk" not in d["event_id"]], [d for d in docs if "bulk" in d["event_id"]]
    produce(kafka_bootstrap, topics["access"], history, principal_key)
    settings = settings_for(kafka_bootstrap, topics, group_id, durable_state=True, state_key="k" * 32,
                            snapshot_interval_s=0.5)
    run = Running(settings, max_idle_s=None)
    wait_until(lambda: committed_total(kafka_bootstrap, settings) == len(history), what="history handled")
    client = admin(kafka_bootstrap)
    client.delete_topics([topics["alerts"]])
    produce(kafka_bootstrap, topics["access"], last, principal_key)
    wait_until(lambda: run.service.health.blocked is not None, timeout_s=90, what="consumption stopped")
    assert value(run.metrics, "privwatch_produce_failures_total", topic=topics["alerts"]) >= 1
    result = run.stop()
    assert isinstance(result, OutputsUnsent) and result.exit_code == 7
    first_commit = committed_total(kafka_bootstrap, settings)
    assert first_commit < len(docs)
    client.create_topics([NewTopic(topics["alerts"], 3, 1)])
    client.close()
    _wait_for_leaders(kafka_bootstrap, [topics["alerts"]], 3)
    again = Running(settings)
    assert again.wait() == 0
    alerts = [orjson.loads(r.value) for r in read_all(kafka_bootstrap, topics["alerts"])]
    assert {a["evidence_event_ids"][-1] for a in alerts if a["level"] in PAGING_LEVELS} == {
        d["event_id"] for d in last}
    reprocessed = len(docs) - first_commit
    m = again.metrics
    processed = sum(value(m, "privwatch_events_consumed_total", type=t, outcome=o) for t in ("access", "permission")
                    for o in ("processed", "dead_lettered"))
    assert processed == reprocessed and committed_total(kafka_bootstrap, settings) == len(docs)
    assert len(alerts) == value(m, "privwatch_records_produced_total", topic=topics["alerts"])


def test_a_dead_letter_too_large_for_its_topic_is_cut_with_its_size(kafka_bootstrap, fresh_topics, group_id):
    topics = fresh_topics(n_partitions=1)
    set_topic_config(kafka_bootstrap, topics["dead-letter"], max_message_bytes="4096")
    good = [access(f"g{i}", T0 + i, "u-1") for i in range(50)]
    huge = orjson.dumps(access("huge", T0 + 60, "u-1") | {"records": "x" * 200_000})
    produce(kafka_bootstrap, topics["access"], [*good[:25], huge, *good[25:]], principal_key)
    settings = settings_for(kafka_bootstrap, topics, group_id)
    run = Running(settings)
    assert run.wait() == 0
    [letter] = read_all(kafka_bootstrap, topics["dead-letter"], expect=1)
    headers = dict(letter.headers)
    assert headers["privwatch.reason"] == b"schema" and headers["privwatch.truncated"] == b"true"
    assert int(headers["privwatch.original.size"]) == len(huge) and huge.startswith(letter.value)
    assert 0 < len(letter.value) < 4096
    assert value(run.metrics, "privwatch_produce_failures_total", topic=topics["dead-letter"]) == 0
    assert_accounted(kafka_bootstrap, settings, run.metrics, expect_consumed=len(good) + 1)


def test_a_record_stamped_hours_ahead_is_dead_lettered_and_closes_no_incident(kafka_bootstrap, fresh_topics,
                                                                             group_id):
    """A grant pages, a record of another principal stamped three hours ahead of the wall clock
    arrives, then the same principal's bulk export: the record is dead-lettered (future_timestamp) and
    the export joins the open incident (before, one record at +23 h closed every open incident)."""
    topics = fresh_topics(n_partitions=1)
    now = time.time()
    start = now - 8 * 86_400
    history = [access(f"h{d}-{i}", start + d * 86_400 + i * 900, "u-f", action="export", records=10 + i % 7)
               for d in range(6) for i in range(30)]
    grant = access("grant-ish", now - 3600, "u-f", action="export", records=480_000, bytes=480_000 * 800)
    ahead = access("ahead", now + 3 * 3600, "u-other", action="read")
    bulk = access("bulk-2", now - 3000, "u-f", action="export", records=520_000, bytes=520_000 * 800)
    docs = [*history, grant, ahead, bulk]
    produce(kafka_bootstrap, topics["access"], docs, principal_key)
    settings = settings_for(kafka_bootstrap, topics, group_id, cooldown_s=0.0)
    run = Running(settings)
    assert run.wait() == 0
    [letter] = read_all(kafka_bootstrap, topics["dead-letter"], expect=1)
    assert dict(letter.headers)["privwatch.reason"] == b"future_timestamp" and b'"ahead"' in letter.value
    pages = [orjson.loads(r.value) for r in read_all(kafka_bootstrap, topics["alerts"])]
    pages = [a for a in pages if a["level"] in PAGING_LEVELS and a["principal_id"] == "u-f"]
    assert len(pages) >= 2 and len({a["incident"]["incident_id"] for a in pages}) == 1, pages
    assert value(run.metrics, "privwatch_dead_letters_total", reason="future_timestamp") == 1
    assert_accounted(kafka_bootstrap, settings, run.metrics, expect_consumed=len(docs))


def state_records(bootstrap: str, topic: str) -> dict[bytes, bytes | None]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    ends, out = consumer.end_offsets(tps), {}
    while any(consumer.position(tp) < ends[tp] for tp in tps):
        for records in consumer.poll(timeout_ms=500).values():
            for record in records:
                out[record.key] = record.value
    consumer.close()
    return out


def test_state_manifests_rolled_back_or_tombstoned_while_running_are_refused(kafka_bootstrap, fresh_topics,
                                                                             group_id):
    """While the service runs, an older signed manifest is re-published over partition 0's newest and
    partition 1's manifests are tombstoned. The next owner refuses both (the group's commits name a
    newer generation) and rebuilds them from the input's history up to the committed offsets, then
    goes on from there: nothing processed twice, nothing started cold."""
    topics = fresh_topics(n_partitions=2)
    docs = [access(f"e{i}", T0 + i * 60, f"u-{i % 12}", action="read") for i in range(2000)]
    settings = settings_for(kafka_bootstrap, topics, group_id, durable_state=True, state_key="k" * 32,
                            snapshot_interval_s=0.5)
    produce(kafka_bootstrap, topics["access"], docs[:1000], principal_key)
    run = Running(settings, max_idle_s=None)
    wait_until(lambda: committed_total(kafka_bootstrap, settings) == 1000, what="first half committed")
    old = {k: v for k, v in state_records(kafka_bootstrap, topics["state"]).items() if v and b"manifest" in k}
    produce(kafka_bootstrap, topics["access"], docs[1000:], principal_key)
    wait_until(lambda: committed_total(kafka_bootstrap, settings) == len(docs), what="second half committed")
    time.sleep(1.5)  # a snapshot or two more
    new = {k: v for k, v in state_records(kafka_bootstrap, topics["state"]).items() if v and b"manifest" in k}
    p0_old = max((v for k, v in old.items() if b"/p0/" in k), key=snapshot.claimed_generation)
    p0_newest = max((k for k in new if b"/p0/" in k), key=lambda k: snapshot.claimed_generation(new[k]))
    assert snapshot.claimed_generation(p0_old) < snapshot.claimed_generation(new[p0_newest])
    tamper = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    for key in new:
        if b"/p0/" in key:
            tamper.send(topics["state"], key=key, value=p0_old if key == p0_newest else None, partition=0)
        else:
            tamper.send(topics["state"], key=key, value=None, partition=1)
    tamper.flush()
    tamper.close()
    assert run.stop() == 0  # nothing changed since the last snapshots: none is written at the stop
    again = Running(settings)
    assert again.wait() == 0
    m = again.metrics
    assert value(m, "privwatch_state_restores_total", outcome="refused") >= 2
    assert value(m, "privwatch_state_restores_total", outcome="restored") == 0
    assert value(m, "privwatch_state_restores_total", outcome="bootstrap") == 2
    assert value(m, "privwatch_state_restores_total", outcome="cold") == 0
    assert value(m, "privwatch_events_consumed_total", type="access", outcome="processed") == 0
    assert committed_total(kafka_bootstrap, settings) == len(docs)
    assert_accounted(kafka_bootstrap, settings, run.metrics, m, expect_consumed=len(docs))


