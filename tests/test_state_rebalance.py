"""Scale-out: instances in one consumer group; stopping one moves its partitions and their state."""

from __future__ import annotations

import pytest
from kafka_helpers import committed, principal_key, produce
from state_helpers import (
    UNSHARED,
    Running,
    alerts_by_detector,
    input_counts,
    reference_alert_ids,
    settings,
    snapshot_counts,
    state_docs,
    wait_until,
)

pytestmark = pytest.mark.integration

NOVELTY = ("novelty", "context")


def _all_committed(bootstrap: str, group: str, topic: str, total: int) -> bool:
    return sum(committed(bootstrap, group, [topic]).values()) >= total


@pytest.mark.parametrize("n_instances", [2, 3])
def test_stopping_an_instance_moves_its_state_without_a_novelty_burst(
        n_instances, kafka_bootstrap, fresh_topics, group_id):
    topics = fresh_topics(n_partitions=3)
    ref_alerts = fresh_topics(n_partitions=3, names=("alerts",))["alerts"]
    docs = state_docs(8_000, 300, seed=21)
    half = len(docs) // 2
    produce(kafka_bootstrap, topics["access"], docs[:half], principal_key)
    s = settings(kafka_bootstrap, topics, group_id, **UNSHARED)  # the same alerts wherever partitions run
    instances = [Running(s) for _ in range(n_instances)]
    try:
        wait_until(lambda: _all_committed(kafka_bootstrap, group_id, topics["access"], half), 120,
                   "the first half handled")
        wait_until(lambda: sum(len(i.service.partitions.engines) for i in instances) == 3, 30, "stable group")
        leaving = next(i for i in instances if i.service.partitions.engines)
        moved = set(leaving.service.partitions.engines)
        leaving.stop()
        stayed = [i for i in instances if i is not leaving]
        produce(kafka_bootstrap, topics["access"], docs[half:], principal_key)
        wait_until(lambda: _all_committed(kafka_bootstrap, group_id, topics["access"], len(docs)), 120,
                   "the second half handled")
        owners = {p for i in stayed for p in i.service.partitions.engines}
        assert moved <= owners
        restored = sum(i.value("privwatch_state_restores_total", outcome="restored") for i in stayed)
        assert restored >= len(moved)
    finally:
        for i in instances:
            if i.thread.is_alive():
                i.stop()

    assert snapshot_counts(kafka_bootstrap, topics, group_id) == dict(input_counts(docs))
    got = alerts_by_detector(kafka_bootstrap, topics["alerts"])
    expected_ids = reference_alert_ids(kafka_bootstrap, topics, ref_alerts, **UNSHARED)
    expected = alerts_by_detector(kafka_bootstrap, ref_alerts)
    late = {d["event_id"] for d in docs[half:]}

    def novelty_after_move(alerts: dict) -> set[str]:
        return {aid for aid, a in alerts.items() if a["detector"] in NOVELTY and a["evidence_event_ids"][-1] in late}

    assert novelty_after_move(got) == novelty_after_move(expected)
    assert set(got) == expected_ids
