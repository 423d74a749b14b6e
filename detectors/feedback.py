"""Analyst verdicts in force, and which findings they suppress.

Verdicts arrive here already authenticated (signature, analyst, alert id, times and scope are checked
by :mod:`stream.feedback.verify`). Each names one alert and a scope:

- ``alert``: that alert only (the same detector, principal and event: reprocessing re-emits it);
- ``detector``: the alert's detector for its principal, for events from ``since`` to ``until``;
- ``resource``: the same, only for findings on one resource.

``false_positive`` and ``benign`` suppress; ``true_positive`` suppresses nothing and is only counted.
A suppressed finding is still emitted, at level ``info`` and naming the verdict, and its event is not
learned as normal: a verdict hides pages, it does not teach the models that the behaviour is usual.
A verdict reaches no other principal (nothing is lowered for the peer group).

The tables are indexed by (detector, principal) and by alert, pruned on expiry and capped
(``max_verdicts``); revoked verdict ids are remembered until their expiry (capped too), so a verdict
replayed after its revoke stays refused. The policy is shared by every engine in a process and
rebuilt from the feedback topic at start, so it is not part of partition snapshots.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from mypy_extensions import mypyc_attr

from detectors.alerts import iso
from detectors.base import Finding

SUPPRESSING: Final = frozenset({"false_positive", "benign"})
SCOPES: Final = ("alert", "detector", "resource")
#: how often (seconds of the reader's clock) expired entries are swept out
PRUNE_EVERY_S: Final = 60.0


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)  # see detectors/native.py
@dataclass
class Verdict:
    """One authenticated verdict, about the alert ``(detector, principal_id, event_id)``.

    ``since`` is the verdict's time clamped to when it was received; ``until`` its expiry.
    """

    verdict_id: str
    verdict: str
    scope: str
    detector: str
    principal_id: str
    event_id: str
    since: float
    until: float
    analyst: str = ""
    resource_id: str = ""

    def describe(self) -> dict[str, Any]:
        """What an alert it suppressed says about it (``suppressed_by`` in the alert contract)."""
        out = {"verdict_id": self.verdict_id, "verdict": self.verdict, "scope": self.scope,
               "analyst": self.analyst, "until": iso(self.until)}
        if self.resource_id:
            out["resource_id"] = self.resource_id
        return out

    def covers(self, finding: Finding) -> bool:
        """Whether this verdict suppresses ``finding`` (same detector and principal already known)."""
        event = finding.event
        if self.scope == "alert":
            return event.event_id == self.event_id and event.ts <= self.until
        if not self.since <= event.ts <= self.until:
            return False
        return self.scope == "detector" or self.resource_id == event.resource_id or \
            self.resource_id in finding.resource_ids


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)  # see detectors/native.py
@dataclass
class FeedbackPolicy:
    """Suppressing verdicts in force, with expiry and caps.

    >>> from detectors.events import Event
    >>> policy = FeedbackPolicy()
    >>> policy.apply(Verdict("v1", "false_positive", "detector", "volume", "u-1", "e0", 0.0, 3600.0, "ana"))
    'applied'
    >>> e = Event(kind="access", event_id="e", ts=60.0, principal_id="u-1", resource_id="t1")
    >>> policy.match(Finding("volume", e, 9.0, "t", ["r"], ["e"])).verdict_id
    'v1'
    >>> policy.revoke("v1", 3600.0), policy.match(Finding("volume", e, 9.0, "t", ["r"], ["e"]))
    (True, None)
    """

    max_verdicts: int = 100_000
    on_suppress: Callable[[str], None] | None = None
    #: suppressing verdicts in force, by verdict id
    verdicts: dict[str, Verdict] = field(default_factory=dict)
    #: (detector, principal) -> ids of its verdicts in force
    index: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    #: revoked verdict id -> until when it must stay refused
    revoked: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    next_prune: float = 0.0

    def __len__(self) -> int:
        return len(self.verdicts)

    def apply(self, verdict: Verdict) -> str:
        """Put a verdict in force: ``applied``, ``duplicate`` (already in force), ``revoked`` (its id was
        revoked), ``counted`` (a true_positive) or ``full`` (at ``max_verdicts``)."""
        if verdict.verdict_id in self.revoked:
            return "revoked"
        if verdict.verdict_id in self.verdicts:
            return "duplicate"
        if verdict.verdict not in SUPPRESSING:
            self.counts[verdict.verdict] = self.counts.get(verdict.verdict, 0) + 1
            return "counted"
        if len(self.verdicts) >= self.max_verdicts:
            return "full"
        self.counts[verdict.verdict] = self.counts.get(verdict.verdict, 0) + 1
        self.verdicts[verdict.verdict_id] = verdict
        self.index.setdefault((verdict.detector, verdict.principal_id), []).append(verdict.verdict_id)
        return "applied"

    def revoke(self, verdict_id: str, until: float) -> bool:
        """Take a verdict out of force and keep its id refused until ``until``; True if it was in force."""
        self.revoked[verdict_id] = max(until, self.revoked.get(verdict_id, until))
        if len(self.revoked) > self.max_verdicts:
            self._forget_soonest_revoked()
        verdict = self.verdicts.pop(verdict_id, None)
        if verdict is None:
            return False
        self._unindex(verdict)
        return True

    def is_revoked(self, verdict_id: str) -> bool:
        return verdict_id in self.revoked

    def match(self, finding: Finding) -> Verdict | None:
        """The verdict in force that suppresses ``finding``, if any (None fast when there is none)."""
        if not self.verdicts:
            return None
        ids = self.index.get((finding.detector, finding.event.principal_id))
        if not ids:
            return None
        for verdict_id in ids:
            verdict = self.verdicts[verdict_id]
            if verdict.covers(finding):
                if self.on_suppress is not None:
                    self.on_suppress("allow_list")
                return verdict
        return None

    def prune(self, now: float, force: bool = False) -> int:
        """Drop verdicts and revoked ids expired by ``now`` (at most every :data:`PRUNE_EVERY_S` unless
        ``force``); return how many were dropped."""
        if not force and now < self.next_prune:
            return 0
        self.next_prune = now + PRUNE_EVERY_S
        expired = [v for v in self.verdicts.values() if v.until < now]
        for verdict in expired:
            del self.verdicts[verdict.verdict_id]
            self._unindex(verdict)
        stale = [vid for vid, until in self.revoked.items() if until < now]
        for vid in stale:
            del self.revoked[vid]
        return len(expired) + len(stale)

    def _unindex(self, verdict: Verdict) -> None:
        key = (verdict.detector, verdict.principal_id)
        ids = self.index.get(key)
        if ids is not None:
            ids.remove(verdict.verdict_id)
            if not ids:
                del self.index[key]

    def _forget_soonest_revoked(self) -> None:
        # Over the cap only when analysts revoke more than max_verdicts verdicts within 30 days: the
        # ids that expire first are the ones whose replay would soon be refused as expired anyway.
        keep = sorted(self.revoked.items(), key=lambda item: item[1])[-self.max_verdicts:]
        self.revoked = dict(keep)
