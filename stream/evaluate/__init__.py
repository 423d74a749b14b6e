"""Scoring privwatch against labelled simulated streams, next to two baselines.

``evaluate_dir(directory, replay=...)`` is the library entry point; ``scoring.score`` does the
matching of alerts to labels; ``cli.register`` adds ``privwatch evaluate``.
"""

from .runner import evaluate_dir
from .scoring import Label, StreamStats, score

__all__ = ["Label", "StreamStats", "evaluate_dir", "score"]
