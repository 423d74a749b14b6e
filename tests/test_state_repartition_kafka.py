"""State follows the principal on the real broker: the service runs on 3 input partitions, the topics grow
to 6, ``privwatch state repartition`` moves the state, and the service goes on from it: every principal's
baseline is where its key now goes and counts every event once."""

from __future__ import annotations

import pytest
from kafka.admin import KafkaAdminClient, NewPartitions
from kafka_helpers import principal_key, produce
from state_helpers import cli_args, input_counts, run_to_end, settings, snapshot_counts, spawn, state_docs

from stream.state.repartition import partition_of

pytestmark = pytest.mark.integration


def test_growing_the_input_topics_from_3_to_6_partitions_keeps_every_baseline(kafka_bootstrap, fresh_topics,
                                                                                group_id, tmp_path):
    topics = fresh_topics(n_partitions=3)
    docs = state_docs(4_000, 150, seed=5)
    s = settings(kafka_bootstrap, topics, group_id)
    produce(kafka_bootstrap, topics["access"], docs[:2500], principal_key)
    run_to_end(s)
    assert snapshot_counts(kafka_bootstrap, topics, group_id) == dict(input_counts(docs[:2500]))

    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_partitions({topics[role]: NewPartitions(6) for role in ("access", "permission")})
    admin.close()
    log = tmp_path / "repartition.log"
    proc = spawn(["state", "repartition", *cli_args(s)[1:], "--from-partitions=3"], log)
    assert proc.wait(timeout=120) == 0, log.read_text()[-3000:]
    moved = snapshot_counts(kafka_bootstrap, topics, group_id, partitions=6)
    assert moved == dict(input_counts(docs[:2500]))  # nothing lost, nothing counted twice

    produce(kafka_bootstrap, topics["access"], docs[2500:], principal_key)  # now spread over 6 partitions
    run_to_end(s)
    assert snapshot_counts(kafka_bootstrap, topics, group_id, partitions=6) == dict(input_counts(docs))
    assert len({partition_of(pid, 6) for pid in moved}) == 6
