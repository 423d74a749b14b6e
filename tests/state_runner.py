"""Run ``privwatch`` with test-only consumer timeouts (a killed member leaves the group in seconds).

``python tests/state_runner.py run ...`` is ``privwatch run ...`` with ``session_timeout_ms`` from
``PRIVWATCH_TEST_SESSION_TIMEOUT_MS`` (default 6000, the broker's minimum) on group consumers.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stream.kafka import clients  # noqa: E402


def fast_group_timeouts(session_timeout_ms: int = 6000) -> None:
    """Make the group consumers notice dead members quickly (tests only)."""
    original = clients.consumer
    if getattr(original, "_fast", False):
        return

    def consumer(settings: Any, **overrides: Any) -> Any:
        if overrides.get("group_id", settings.group_id) is not None:
            overrides.setdefault("session_timeout_ms", session_timeout_ms)
            overrides.setdefault("heartbeat_interval_ms", max(500, session_timeout_ms // 6))
        return original(settings, **overrides)

    consumer._fast = True  # type: ignore[attr-defined]
    clients.consumer = consumer  # type: ignore[assignment]


if __name__ == "__main__":
    fast_group_timeouts(int(os.environ.get("PRIVWATCH_TEST_SESSION_TIMEOUT_MS", "6000")))
    from stream.cli import main

    sys.exit(main(sys.argv[1:]))
