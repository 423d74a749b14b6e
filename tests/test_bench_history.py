"""``privwatch bench``'s latency phase continues the pre-filled history (no broker)."""

from __future__ import annotations

import time
from datetime import datetime

from stream.bench.cli import MAX_LATENCY_RATE, weeks_for_latency
from stream.bench.latency import WARMUP_S, WEEK_S, iso, templates
from stream.contract.decode import decode
from stream.simulate import recent_history


def _ts(doc: dict) -> float:
    return datetime.fromisoformat(doc["ts"].replace("Z", "+00:00")).timestamp()


def test_history_ends_the_requested_weeks_before_yesterday() -> None:
    events = recent_history(3000, 40, seed=1, weeks_before=2)
    last = max(_ts(e) for e in events)
    assert time.time() - 2 * WEEK_S - 3 * 86_400 < last < time.time() - 2 * WEEK_S


def test_replayed_weeks_are_valid_events_in_the_past_and_keep_their_hour_and_weekday() -> None:
    seconds, principals = 5.0, 40
    weeks = weeks_for_latency(3000, principals, seconds)
    history = recent_history(3000, principals, seed=1, weeks_before=weeks)
    week = templates(history)
    assert 0 < len(week) <= len(history)
    assert [t.ts for t in week] == sorted(t.ts for t in week)
    assert max(t.ts for t in week) - min(t.ts for t in week) <= WEEK_S
    # the phase's upper bound of events (its warm-up too) fits in the replayed weeks before the wall
    # clock is reached
    assert len(week) * weeks >= MAX_LATENCY_RATE * (WARMUP_S + seconds)
    assert week[-1].ts + weeks * WEEK_S < time.time()
    by_id = {e["event_id"]: e for e in history}
    original = next(e for e in history if _ts(e) == week[0].ts)
    replayed = week[0].ts + 3 * WEEK_S
    event = decode(week[0].value("bench-x-0", iso(replayed)), now=time.time())
    assert event.event_id == "bench-x-0" and abs(event.ts - replayed) < 0.001
    assert event.principal_id == week[0].key.decode()
    assert time.gmtime(event.ts)[3:7] == time.gmtime(_ts(original))[3:7]  # hour, minute, second, weekday
    assert "bench-x-0" not in by_id
