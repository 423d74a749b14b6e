"""The engine: one event in, zero or more contract alerts out.

One engine holds the detector state of one input partition (replay uses one for the whole file).
It never reads the wall clock: windows, ages and time of day come from event time; the caller
passes ``detected_at`` (the service passes the wall clock, replay passes nothing and gets the
event time, so replay output is deterministic).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from mypy_extensions import mypyc_attr

from detectors.alerts import build_alert
from detectors.base import Detector, Finding, Profile
from detectors.calibrate import PAGING_FLOOR, PAGING_LEVELS, Calibrator, level_for
from detectors.events import KINDS, Event
from detectors.feedback import FeedbackPolicy

#: the detectors' learned-state layout and scoring: bump it whenever either changes, so that
#: snapshots of the old state are refused (the partition falls back to an older snapshot or starts
#: afresh) instead of unpickled into new code, and alerts say which model raised them
MODEL_VERSION: Final = "0.3.1"


@dataclass
class EngineConfig:
    """Engine-wide knobs; units in the names."""

    cooldown_s: float = 3600.0
    warmup_events: int = 15
    warmup_days: float = 3.0
    idle_ttl_s: float = 45 * 86_400.0
    #: memory budget per engine (partition): beyond this many principals the least recently seen are
    #: forgotten at the next sweep. Each detector keeps fixed-size, capped structures per principal
    #: (about 2 KB pickled in all), so this bounds the partition's state at roughly 2 KB x max_principals.
    max_principals: int = 250_000
    sweep_every_s: float = 3600.0
    min_severity: float = 0.0
    calibration_prior_events: int = 10_000
    detectors: Sequence[str] | None = None  # None: the default suite
    detector_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: event ids remembered per engine (partition): an event whose id is among the last
    #: ``dedup_recent`` to ``2 * dedup_recent`` seen is a duplicate (an at-least-once producer's retry,
    #: ``privwatch ingest`` re-sending after a crash) and is ignored; 0 turns this off
    dedup_recent: int = 8192
    #: roles and departments whose members may hand out permissions (configuration, never fixed in
    #: code; the people directory's admin flag on an event's actor decides first): given to every
    #: detector that takes ``admin_roles``/``admin_departments``, unless its own parameters say otherwise
    admin_roles: tuple[str, ...] = ()
    admin_departments: tuple[str, ...] = ()


#: the engine's own learned state and settings: what a snapshot holds (see ``__getstate__``)
_STATE = ("config", "detectors", "calibrators", "profiles", "cooldown_until", "watermark", "_next_sweep",
          "_state_bytes", "_shift_sensitive", "_shift", "recent_ids", "older_ids", "duplicates")


def default_detectors(config: EngineConfig) -> list[Detector]:
    from detectors.registry import build_detectors

    shared = {"admin_roles": tuple(config.admin_roles), "admin_departments": tuple(config.admin_departments)}
    return build_detectors(config.detectors, config.detector_params, shared)


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class Engine:
    """Run every detector on each event, calibrate, decide, learn, and build alerts.

    >>> from detectors.events import Event
    >>> engine = Engine()
    >>> engine.process(Event(kind="access", event_id="e1", ts=1.7e9, principal_id="u-1", action="read"))
    []
    >>> engine.n_principals()
    1
    """

    def __init__(self, config: EngineConfig | None = None, detectors: list[Detector] | None = None,
                 alert_key: bytes = b""):
        self.config = config or EngineConfig()
        self.detectors = detectors if detectors is not None else default_detectors(self.config)
        prior = self.config.calibration_prior_events
        self.calibrators = {d.name: Calibrator(prior_events=prior) for d in self.detectors}
        self.profiles: dict[str, Profile] = {}
        self.cooldown_until: dict[tuple[str, str], float] = {}
        self.watermark = 0.0
        self._next_sweep = 0.0
        self._state_bytes = 0
        #: shared analyst-feedback policy (not part of the engine's own state, see __getstate__)
        self.feedback: FeedbackPolicy | None = None
        #: key of the alert ids' MAC (detectors/alerts.py): a secret, so never part of a snapshot
        self.alert_key = alert_key
        self._shift_sensitive = frozenset(d.name for d in self.detectors if d.shift_sensitive)
        #: the detector (drift) that tells whether a peer group is shifting as a whole, if any
        self._shift: Any = next((d for d in self.detectors if hasattr(d, "is_peer_shift")), None)
        #: the ids of recent events, in two generations (the older dropped when the newer fills up):
        #: bounded memory, O(1) per event, and both pickle with the snapshot
        self.recent_ids: set[str] = set()
        self.older_ids: set[str] = set()
        #: events ignored as duplicates of a recent event id
        self.duplicates = 0
        self._plan()
        self._untracked()
        self._unviewed()

    def _unviewed(self) -> None:
        """No other partition in view (one engine): see :meth:`view`. Not pickled."""
        #: detector name -> the other partitions' calibrators of that detector
        self._calibrators_seen: dict[str, tuple[Calibrator, ...]] = {}
        #: the view as given (diagnostics and tests)
        self.others: list[dict[str, Any]] = []

    def partial(self) -> dict[str, Any]:
        """This engine's cross-principal aggregates: detector name -> (the detector's
        :meth:`~detectors.base.Detector.partial`, or None; its severity calibrator). Live objects, not
        copies: whoever ships them elsewhere pickles them, and only this engine mutates them. They are
        part of the durable state already (:func:`detectors.portable.export_shared`); after a restore
        (new objects) ask again and give the views afresh (:func:`detectors.commons.link`)."""
        return {d.name: (d.partial(), self.calibrators[d.name]) for d in self.detectors}

    def view(self, others: Sequence[dict[str, Any]]) -> None:
        """The partials of every *other* partition (what :meth:`partial` returned there: live objects in
        this process, or unpickled copies). Replaces the previous view; never persisted. The detectors
        read their own aggregates plus these (sums, pooled means) and never mutate them; severities
        are calibrated over every partition's findings. An empty view is one engine, exactly."""
        calibrators: dict[str, tuple[Calibrator, ...]] = {}
        for detector in self.detectors:
            entries = [other[detector.name] for other in others if detector.name in other]
            detector.view([entry[0] for entry in entries if entry[0] is not None])
            if entries:
                calibrators[detector.name] = tuple([entry[1] for entry in entries])
        self._calibrators_seen = calibrators
        self.others = list(others)

    def _untracked(self) -> None:
        """No change tracking (as replay runs): see :meth:`track_changes`. Not pickled."""
        #: principals whose state changed since the last checkpoint's cut (None: not tracked)
        self.changed: set[str] | None = None
        #: principals a checkpoint in progress has yet to write: each is handed to ``capture`` (which
        #: encodes its state as of the cut) before its state next changes
        self.capture_first: set[str] = set()
        self.capture: Callable[[str], None] | None = None

    def track_changes(self, capture: Callable[[str], None]) -> None:
        """Note the principals whose state changes (:attr:`changed`), for incremental checkpoints
        (``stream/state``); ``capture(principal_id)`` is called before a principal of
        :attr:`capture_first` changes."""
        self.changed = set()
        self.capture = capture

    def _changing(self, principal_id: str, changed: set[str]) -> None:
        if self.capture_first and principal_id in self.capture_first:
            self.capture_first.discard(principal_id)
            if self.capture is not None:
                self.capture(principal_id)
        changed.add(principal_id)

    def _plan(self) -> None:
        """Per event kind, the (detector, calibrator) pairs that look at it, resolved once rather than
        per event. Derived from ``detectors`` and ``calibrators``: not pickled, rebuilt on restore.
        Methods are called on the detector, not through stored bound methods: compiled, that is a
        native call; a bound method is a Python call that parses its arguments each time."""
        self._steps: dict[str, list[tuple[Detector, Calibrator]]] = {
            kind: [(d, self.calibrators[d.name]) for d in self.detectors if kind in d.event_kinds]
            for kind in KINDS
        }
        self._all_steps = [(d, self.calibrators[d.name]) for d in self.detectors]

    def __getstate__(self) -> dict[str, Any]:
        # Named attributes, not ``__dict__``: the compiled (mypyc) engine has none. A subclass's own
        # attributes (plain Python, with a ``__dict__``) are kept too.
        state = dict(getattr(self, "__dict__", {}))
        state.update((name, getattr(self, name)) for name in _STATE)
        state["feedback"] = None  # shared across engines and rebuilt from the feedback topic
        state.pop("alert_key", None)  # a secret: handed to the engine again after a restore
        for derived in ("_steps", "_all_steps", "_by_kind", "changed", "capture_first", "capture",
                        "_calibrators_seen"):
            state.pop(derived, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        state.pop("_by_kind", None)  # what snapshots of earlier versions held instead of the plan
        state.pop("feedback", None)
        for name in ("recent_ids", "older_ids"):  # snapshots written before de-duplication existed
            state.setdefault(name, set())
        state.setdefault("duplicates", 0)
        state.pop("alert_key", None)
        for name, value in state.items():
            setattr(self, name, value)
        self.feedback = None
        self.alert_key = b""
        self._plan()
        self._untracked()
        self._unviewed()

    def n_principals(self) -> int:
        return len(self.profiles)

    def state_bytes(self) -> int:
        """Size of the learned state as the last snapshot written or restored measured it
        (compressed payload bytes; 0 before the first snapshot, or with snapshots off)."""
        return self._state_bytes

    def note_state_bytes(self, payload_bytes: int) -> None:
        """Record the size of the learned state as a snapshot written or restored measured it."""
        self._state_bytes = payload_bytes

    def _profile(self, event: Event) -> Profile:
        profile = self.profiles.get(event.principal_id)
        if profile is None:
            # interned: one string per peer group, not one per principal (68 bytes each)
            profile = Profile(first_ts=event.ts, last_ts=event.ts, peer_group=sys.intern(event.peer_group),
                              key=event.principal_id)
            profile.kind = sys.intern(event.principal_kind)
            self.profiles[event.principal_id] = profile
        return profile

    def is_duplicate(self, event_id: str) -> bool:
        """Whether ``event_id`` was seen among the recent events; remembers it if not."""
        cap = self.config.dedup_recent
        if cap <= 0:
            return False
        recent = self.recent_ids
        if event_id in recent or event_id in self.older_ids:
            self.duplicates += 1
            return True
        if len(recent) >= cap:
            self.older_ids = recent
            recent = self.recent_ids = set()
        recent.add(event_id)
        return False

    def process(self, event: Event, detected_at: float | None = None) -> list[dict[str, Any]]:
        """Score, decide and learn one event; return the alerts it raises (maybe none). An event whose
        id was seen recently is a duplicate: ignored, no alert (:meth:`is_duplicate`)."""
        if self.is_duplicate(event.event_id):
            return []
        profile = self.profiles.get(event.principal_id)
        if profile is not None and profile.key is not event.principal_id:
            # each decoded event brings its own copy of the id: detectors keying a new record by it
            # would keep one copy each (measured: 2.4 per principal); they get the engine's instead
            if profile.key == event.principal_id:
                event.principal_id = profile.key
            else:
                profile.key = event.principal_id  # a profile unpickled from a whole-engine snapshot
        changed = self.changed
        if changed is not None:
            self._changing(event.principal_id, changed)
        ts = event.ts
        if ts > self.watermark:
            self.watermark = ts
        if profile is None:
            profile = self._profile(event)
        alerts = []
        steps = self._steps.get(event.kind)
        for detector, calibrator in self._all_steps if steps is None else steps:
            finding = detector.score_one(event, profile)
            if finding is None:
                calibrator.n_ += 1  # Calibrator.observe(0.0), inlined: hot path
                detector.learn_one(event, profile, False)
                continue
            alert, flagged = self._decide(finding, profile, detected_at)
            if alert is not None:
                alerts.append(alert)
            detector.learn_one(event, profile, flagged)
        profile.n_events += 1
        if ts > profile.last_ts:
            profile.last_ts = ts
        if self.watermark >= self._next_sweep:
            self.sweep()
        return alerts

    def _severity(self, finding: Finding, profile: Profile) -> float:
        calibrator = self.calibrators[finding.detector]
        seen = self._calibrators_seen
        pooled = calibrator.pooled(seen[finding.detector]) if finding.detector in seen else calibrator
        severity = max(pooled.severity(finding.score), finding.min_severity)
        calibrator.observe(finding.score)
        severity = min(severity, finding.max_severity)
        if finding.needs_history and self._warming_up(profile, finding.event.ts):
            severity = min(severity, 29.0)  # low at most: no page before a baseline exists
        if self._shift is not None and finding.detector != self._shift.name:
            if severity >= PAGING_FLOOR:  # peers doing the same means peers' pages, not their noise
                self._shift.note_finding(finding, profile)
            if not (finding.peer_shift or finding.beyond_shift) and finding.detector in self._shift_sensitive:
                finding.peer_shift = self._shift.is_peer_shift(finding, profile)
        if finding.peer_shift:
            severity = min(severity * 0.5, 45.0)  # the whole peer group does it: report, do not page
            finding.reasons.append("damped: this principal's peer group is shifting the same way right now")
        return severity

    def _decide(
        self, finding: Finding, profile: Profile, detected_at: float | None
    ) -> tuple[dict | None, bool]:
        """Severity, level and cooldown; also whether the event is anomalous (then it is not learned).

        A finding an analyst's verdict covers is still reported, at level info and naming the verdict,
        and its event is not learned as normal (:mod:`detectors.feedback`)."""
        event = finding.event
        severity = self._severity(finding, profile)
        level = level_for(severity)
        flagged = level in PAGING_LEVELS
        if flagged:  # how severe, now that it pages: ranked among the detector's findings and rarity
            calibrator = self.calibrators[finding.detector]
            seen = self._calibrators_seen
            if finding.detector in seen:  # over every partition's findings (this one's already observed)
                calibrator = calibrator.pooled(seen[finding.detector])
            severity = calibrator.paging_severity(finding.score, finding.min_severity, finding.max_severity)
            level = level_for(severity)
        verdict = self.feedback.match(finding) if self.feedback is not None else None
        if verdict is not None:
            finding.reasons.append(f"suppressed by analyst verdict {verdict.verdict_id} ({verdict.verdict}, "
                                   f"scope {verdict.scope}, by {verdict.analyst or 'an analyst'})")
            level = "info"  # reported, not paged; a paging finding stays flagged, so it is not learned
        if severity < self.config.min_severity:
            return None, flagged
        key = (finding.detector, event.principal_id)
        if self.cooldown_until.get(key, 0.0) > event.ts:
            return None, flagged  # the same incident already paged: stay quiet, but do not learn it
        if flagged and verdict is None:
            self.cooldown_until[key] = event.ts + self.config.cooldown_s
        when = event.ts if detected_at is None else detected_at
        suppressed_by = None if verdict is None else verdict.describe()
        return build_alert(finding, severity, level, when, MODEL_VERSION, self.alert_key, suppressed_by), flagged

    def _warming_up(self, profile: Profile, now: float) -> bool:
        return (
            profile.n_events < self.config.warmup_events
            or profile.history_days(now) < self.config.warmup_days
        )

    def sweep(self) -> int:
        """Forget principals idle for longer than ``idle_ttl_s`` of event time, and the least recently
        seen beyond ``max_principals``; return how many were forgotten."""
        horizon = self.watermark - self.config.idle_ttl_s
        idle = [pid for pid, p in self.profiles.items() if p.last_ts < horizon]
        excess = len(self.profiles) - len(idle) - self.config.max_principals
        if excess > 0:
            kept = [item for item in self.profiles.items() if item[1].last_ts >= horizon]
            idle += [pid for pid, _ in sorted(kept, key=lambda item: item[1].last_ts)[:excess]]
        changed = self.changed
        for pid in idle:
            if changed is not None:
                self._changing(pid, changed)
            del self.profiles[pid]
            for detector in self.detectors:
                detector.forget(pid)
        self.cooldown_until = {k: t for k, t in self.cooldown_until.items() if t > self.watermark}
        self._next_sweep = self.watermark + self.config.sweep_every_s
        return len(idle)
