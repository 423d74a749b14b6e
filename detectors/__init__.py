"""privwatch's detectors: pure computation on :class:`~detectors.events.Event` objects.

Nothing here talks to Kafka, reads the wall clock or does I/O; everything is testable with no broker.
The hot modules run compiled by mypyc when a build matching their sources exists (:mod:`detectors.native`).

``Engine``, ``EngineConfig`` and ``Event`` are importable from here, loaded on first use: importing
the package only activates the build, so that ``stream`` (whose ``__init__`` activates its own
compiled modules through :mod:`detectors.native`) does not load the engine and numpy into processes
that never use them, such as the bench's load generator.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from detectors import native

native.activate(__path__, "detectors")

if TYPE_CHECKING:
    from detectors.engine import Engine, EngineConfig
    from detectors.events import Event

__all__ = ["Engine", "EngineConfig", "Event"]
_HOMES = {"Engine": "detectors.engine", "EngineConfig": "detectors.engine", "Event": "detectors.events"}


def __getattr__(name: str) -> Any:
    """The re-exports, imported when first asked for (PEP 562)."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'detectors' has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
