"""100,000 forged verdicts on the feedback topic: all refused and counted, nothing retained, the same alerts.

The time they cost is measured, not asserted: ``python -m stream.bench.flood`` prints it
(docs/analyst-guide.md has the numbers)."""

from __future__ import annotations

import time

import orjson
import pytest

from stream.bench.flood import forged_records, retained_bytes, run, settings_with_analysts
from stream.simulate import simulate

FORGED = 100_000
COSTLY = 500  # real alert ids under a real analyst's name, wrong key: these reach the signature check


@pytest.fixture(scope="module")
def world():
    events, _ = simulate(seed=2, principals=40, days=12)
    return [orjson.dumps(e) for e in events]


def test_a_flood_of_forged_verdicts_is_refused_counted_and_changes_nothing(world, tmp_path):
    settings, _, key_id = settings_with_analysts(tmp_path)
    quiet = run(world, settings, [])
    ids = [orjson.loads(a)["alert_id"] for a in quiet.alerts]
    assert ids, "the simulated world raises alerts"
    flood = forged_records(FORGED, ids, "alice", key_id, time.time(), COSTLY)
    flooded = run(world, settings, flood)
    assert flooded.alerts == quiet.alerts
    third = (FORGED - COSTLY) / 3
    assert flooded.refused == pytest.approx({"bad_signature": COSTLY, "unsigned": third, "unknown_analyst": third,
                                             "not_emitted": third}, abs=1)
    reader, policy = flooded.service.feedback_reader, flooded.service.feedback
    assert len(policy) == 0 and not policy.revoked and not policy.index and not reader.pending


def test_reading_a_flood_keeps_nothing(world, tmp_path):
    settings, _, key_id = settings_with_analysts(tmp_path)
    flood = forged_records(FORGED, ["volume:u-1:e-1:0123456789abcdef"], "alice", key_id, time.time(), 0)
    kept, peak = retained_bytes(world, settings, flood)
    assert kept < 256 << 10, f"{kept} bytes retained after reading {FORGED} forged records"
    assert peak < 8 << 20, f"{peak} bytes at the peak"  # one fetched batch at a time


def test_a_flood_arriving_while_running_is_read_within_the_budget(world, tmp_path):
    """Read within the loop's budget (2% of its time while input flows): the alerts do not change and
    whatever was read was refused."""
    settings, _, key_id = settings_with_analysts(tmp_path)
    quiet = run(world, settings, [])
    flood = forged_records(20_000, ["volume:u-1:e-1:0123456789abcdef"], "alice", key_id, time.time(), 0)
    during = run(world, settings, flood, during=True)
    assert during.alerts == quiet.alerts
    assert 0 < sum(during.refused.values()) <= 20_000 and len(during.service.feedback) == 0
