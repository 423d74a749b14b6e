"""privwatch's detectors: pure computation on :class:`~detectors.events.Event` objects.

Nothing here talks to Kafka, reads the wall clock or does I/O; everything is testable with no broker.
"""

from detectors.engine import Engine, EngineConfig
from detectors.events import Event

__all__ = ["Engine", "EngineConfig", "Event"]
