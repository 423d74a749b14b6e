"""privwatch's detectors: pure computation on :class:`~detectors.events.Event` objects.

Nothing here talks to Kafka, reads the wall clock or does I/O; everything is testable with no broker.
The hot modules run compiled by mypyc when a build matching their sources exists (:mod:`detectors.native`).
"""

from detectors import native

native.activate(__path__, "detectors")

from detectors.engine import Engine, EngineConfig  # noqa: E402 - after the compiled modules are on __path__
from detectors.events import Event  # noqa: E402

__all__ = ["Engine", "EngineConfig", "Event"]
