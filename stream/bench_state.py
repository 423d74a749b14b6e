"""State bytes per principal for ``privwatch bench``: the shared snapshot benchmark of
:mod:`stream.statebench`, run with the garbage collector paused (only sizes and times are
measured, and full collections over a growing 100k-principal state would triple the time)."""

from __future__ import annotations

from typing import Any

from stream.gctune import paused_gc
from stream.statebench import run_state_benchmark


def state_bytes_per_principal(principals: int) -> dict[str, Any]:
    with paused_gc():
        return {"source": "stream.statebench", **run_state_benchmark(principals)}
