"""Shared baselines across instances on the real broker: two instances in one group over four input
partitions; a new HR partner's peers are all in partitions the other instance owns. Once the commons
have been exchanged, the partner's first touch of the health data its peers use daily does not page;
a finance analyst's first touch of it, in the same partition, still does. A forged record on the commons
topic is refused, unread, by both instances."""

from __future__ import annotations

import pickle
from typing import Any

import orjson
import pytest
from factories import T0, access
from kafka.partitioner.default import murmur2
from kafka_helpers import committed, principal_key, produce, read_all
from state_helpers import Running, settings, wait_until

from stream.settings import Settings

pytestmark = pytest.mark.integration

DAY = 86_400.0
PARTITIONS = 4
MEDICAL = {"id": "hr.medical_leave", "kind": "table", "sensitivity": "restricted", "categories": ["health", "pii.hr"]}
EMPLOYEES = {"id": "hr.employees", "kind": "table", "sensitivity": "restricted", "categories": ["pii.hr"]}


def partition_of(principal: str) -> int:
    return (murmur2(principal.encode()) & 0x7FFFFFFF) % PARTITIONS


def pick(prefix: str, partitions: set[int], n: int) -> list[str]:
    """``n`` principal ids starting with ``prefix`` whose records land in ``partitions``."""
    found = [f"{prefix}{i}" for i in range(10_000) if partition_of(f"{prefix}{i}") in partitions]
    return found[:n]


def touch(event_id: str, ts: float, who: str, dept: str, role: str, resource: dict[str, Any]) -> dict[str, Any]:
    doc = access(event_id, ts, who, action="read", records=2)
    doc["principal"].update(department=dept, role=role)
    doc["resource"] = dict(resource)
    return doc


def history(peers: list[str], local_peer: str, days: int = 10) -> list[dict[str, Any]]:
    """HR partners' routine: the peers read medical leave every day; the one in the joiner's partition
    reads the employee table daily and medical leave once, on the first day (so the data is known there,
    and not new)."""
    docs = []
    for d in range(days):
        ts = T0 + d * DAY + 9 * 3600
        for i, peer in enumerate(peers):
            docs.append(touch(f"{peer}-{d}", ts + i * 60, peer, "hr", "partner", MEDICAL))
        docs.append(touch(f"{local_peer}-{d}", ts + 600, local_peer, "hr", "partner", EMPLOYEES if d else MEDICAL))
    return docs


def handled(s: Settings, total: int) -> bool:
    return sum(committed(s.bootstrap_servers, s.group_id, [s.access_topic]).values()) >= total


def test_peers_in_the_other_instances_partitions_make_a_first_touch_normal(kafka_bootstrap, fresh_topics,
                                                                            group_id) -> None:
    topics = fresh_topics(n_partitions=PARTITIONS)
    s = settings(kafka_bootstrap, topics, group_id, commons_interval_s=1.0)
    forged = pickle.dumps({"novelty": "not signed"})  # refused unread by every instance
    produce(kafka_bootstrap, topics["commons"], [forged], lambda _: f"{group_id}/commons/99".encode())
    instances = [Running(s), Running(s)]
    try:
        wait_until(lambda: all(len(i.service.partitions.engines) == 2 for i in instances), 90,
                   "two partitions each")
        here, there = instances
        mine, theirs = set(here.service.partitions.engines), set(there.service.partitions.engines)
        p = min(mine)
        local_peer, joiner, outsider = pick("hr-local-", {p}, 1) + pick("hr-new-", {p}, 1) + pick("fi-new-", {p}, 1)
        peers = pick("hr-peer-", theirs, 3)
        docs = history(peers, local_peer)
        produce(kafka_bootstrap, topics["access"], docs, principal_key)
        wait_until(lambda: handled(s, len(docs)), 120, "the history handled")
        engine = here.service.partitions.engines[p]
        assert engine.partial()["novelty"][0][0].size("peer:hr/partner") == 1  # alone, the joiner has one peer

        def peers_seen() -> bool:  # what the other instance published since, in this instance's view of p
            return sum(o["novelty"][0][0].size("peer:hr/partner") for o in engine.others if "novelty" in o) == 3

        wait_until(peers_seen, 60, "the other instance's partials in this instance's view")
        assert theirs <= set(here.service.commons.remote)
        at = T0 + 10 * DAY + 10 * 3600
        firsts = [touch("joiner-first", at, joiner, "hr", "partner", MEDICAL),
                  touch("outsider-first", at + 60, outsider, "finance", "analyst", MEDICAL)]
        produce(kafka_bootstrap, topics["access"], firsts, principal_key)
        wait_until(lambda: handled(s, len(docs) + 2), 60, "the first touches handled")
        remote = here.value("privwatch_commons_partitions", state="remote")
        refused = [i.value("privwatch_commons_refused_total", reason="unsigned") for i in instances]
        published = there.value("privwatch_commons_published_total")
    finally:
        for i in instances:
            if i.thread.is_alive():
                i.stop()
    assert remote == 2 and published >= 2 and refused == [1, 1]
    alerts = [orjson.loads(r.value) for r in read_all(kafka_bootstrap, topics["alerts"])]
    novelty = {a["evidence_event_ids"][-1]: a for a in alerts if a["detector"] == "novelty"}
    assert novelty["outsider-first"]["level"] in ("medium", "high", "critical")
    assert novelty.get("joiner-first", {}).get("level") not in ("medium", "high", "critical")
