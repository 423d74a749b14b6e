"""``privwatch bench`` pre-fills a history that the latency phase's live events continue (no broker)."""

from __future__ import annotations

import time
from datetime import datetime

from stream.bench import simulated


def test_simulated_history_ends_just_before_now() -> None:
    events = simulated(3000, 40, seed=1)
    last = max(datetime.fromisoformat(e["ts"].replace("Z", "+00:00")).timestamp() for e in events)
    # in the past, and well within the dormancy detector's 30 days of silence
    assert time.time() - 4 * 86_400 < last < time.time()
