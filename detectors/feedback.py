"""Analyst feedback: what a verdict does to later alerts.

Verdicts act on events from their own ``ts`` on (so reprocessing older events after a restart
re-raises the same alerts). A ``false_positive`` or ``benign`` verdict allow-lists the
(detector, principal[, resource]) of the alert for ``allow_s`` of event time: matching findings
are not raised and, when ``learn_as_normal``, their events are learned as normal. It also raises
that detector's bar for the principal's peer group (``false_positive_step`` or ``benign_step``
severity points, capped at ``max_raise``, for ``allow_s``): what paged wrongly for one member is
likely to page wrongly for its peers. ``true_positive`` changes nothing but is counted.

The policy is shared by every engine in a process and rebuilt from the whole feedback topic at
start (like a global table), so it is not part of partition snapshots.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from mypy_extensions import mypyc_attr

from detectors.base import Finding, Profile

DAY_S: Final = 86_400.0


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)  # see detectors/native.py
@dataclass
class Verdict:
    """A verdict joined with the alert it is about (the service keeps recent alerts to join)."""

    verdict: str
    ts: float
    detector: str
    principal_id: str
    peer_group: str | None = None  # None: looked up from the engine's profile when it matters
    resource_ids: tuple[str, ...] = ()


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)  # see detectors/native.py
@dataclass
class FeedbackPolicy:
    """Allow-lists and per-peer-group threshold offsets, with event-time expiry.

    >>> from detectors.events import Event
    >>> policy = FeedbackPolicy()
    >>> policy.apply(Verdict("false_positive", 0.0, "volume", "u-1", resource_ids=("t1",)))
    >>> e = Event(kind="access", event_id="e", ts=60.0, principal_id="u-1", resource_id="t1")
    >>> f = Finding("volume", e, 9.0, "t", ["r"], ["e"])
    >>> policy.adjust(f, Profile(0.0, 0.0), 90.0)
    (None, 'allow-listed by analyst feedback')
    """

    allow_s: float = 30 * DAY_S
    benign_step: float = 15.0
    false_positive_step: float = 10.0
    max_raise: float = 30.0
    learn_as_normal: bool = True
    on_suppress: Callable[[str], None] | None = None
    #: (detector, principal, resource) -> (from, until) in event time
    allow: dict[tuple[str, str, str], tuple[float, float]] = field(default_factory=dict)
    #: (detector, principal) -> (points, from, until, peer group if known): raises the bar for its peers
    raise_by: dict[tuple[str, str], tuple[float, float, float, str | None]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def apply(self, verdict: Verdict) -> None:
        self.counts[verdict.verdict] = self.counts.get(verdict.verdict, 0) + 1
        if verdict.verdict == "true_positive":
            return
        until = verdict.ts + self.allow_s
        for resource in verdict.resource_ids or ("*",):
            self.allow[(verdict.detector, verdict.principal_id, resource)] = (verdict.ts, until)
        step = self.benign_step if verdict.verdict == "benign" else self.false_positive_step
        key = (verdict.detector, verdict.principal_id)
        points = self.raise_by.get(key, (0.0, 0.0, 0.0, None))[0]
        self.raise_by[key] = (min(points + step, self.max_raise), verdict.ts, until, verdict.peer_group)

    def adjust(self, finding: Finding, profile: Profile, severity: float,
               peer_group_of: Callable[[str], str | None] = lambda _: None) -> tuple[float | None, str | None]:
        """The severity after feedback (None: suppressed) and a reason to add, if any.

        ``peer_group_of`` names the peer group of the principal a verdict was about, when the
        verdict itself did not say (the engine knows it from its profiles).
        """
        event = finding.event
        for resource in (event.resource_id or "*", "*"):
            span = self.allow.get((finding.detector, event.principal_id, resource))
            if span is not None and span[0] <= event.ts <= span[1]:
                if self.on_suppress is not None:
                    self.on_suppress("allow_list")
                return None, "allow-listed by analyst feedback"
        points = 0.0
        for (detector, principal), (step, since, until, group) in self.raise_by.items():
            if (detector == finding.detector and since <= event.ts <= until
                    and (group or peer_group_of(principal)) == profile.peer_group):
                points += step
        if points:
            points = min(points, self.max_raise)
            why = f"bar raised by {points:.0f} points: analysts judged peers' similar alerts not incidents"
            return severity - points, why
        return severity, None
