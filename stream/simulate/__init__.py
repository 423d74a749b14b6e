"""A seeded organisation simulator with labelled privacy incidents and benign shifts.

``simulate(seed, principals, days, ...) -> (events, labels)`` is the library entry point;
``produce_to_kafka`` sends such events to the two input topics; ``cli.register`` adds
``privwatch simulate``.
"""

from .generator import EVENTS_PER_PRINCIPAL_DAY, recent_history, simulate
from .incidents import INCIDENT_KINDS
from .output import produce_to_kafka
from .shifts import BENIGN_KINDS

__all__ = [
    "BENIGN_KINDS", "EVENTS_PER_PRINCIPAL_DAY", "INCIDENT_KINDS", "produce_to_kafka", "recent_history", "simulate",
]
