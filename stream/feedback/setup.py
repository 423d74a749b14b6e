"""The service's feedback reader, built from settings (kept here so the service stays small)."""

from __future__ import annotations

from typing import Any

from detectors.feedback import FeedbackPolicy
from stream.feedback.analysts import load_analysts
from stream.feedback.keys import alert_id_key
from stream.feedback.reader import FeedbackReader
from stream.feedback.verify import VerdictChecker
from stream.ops.metrics import Metrics
from stream.settings import Settings


def checker(settings: Settings) -> VerdictChecker:
    """What decides whether a feedback record counts: the analysts, the alert-id key, the skew allowed."""
    return VerdictChecker(load_analysts(settings.analysts_file), alert_id_key(settings), settings.feedback_max_skew_s)


def feedback_reader(settings: Settings, consumer: Any, policy: FeedbackPolicy, metrics: Metrics) -> FeedbackReader:
    return FeedbackReader(consumer, settings.feedback_topic, policy, checker(settings),
                          on_verdict=lambda verdict: metrics.feedback.labels(verdict).inc(),
                          on_refused=lambda reason: metrics.feedback_refused.labels(reason).inc())
