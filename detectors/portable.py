"""An engine's state in the two parts a checkpoint writes apart: each principal's (its profile, its
cooldowns and every detector's :meth:`~detectors.base.Detector.export`), and what is no one
principal's (calibration, peer groups, the organisation, models, recent event ids).

A checkpoint writes only the principals that changed since the last one, plus the shared part
(``stream/state``); a restore rebuilds an engine, made with the current configuration, from them.
Each detector's state carries its :attr:`~detectors.base.Detector.state_version`: a restore migrates
older layouts (:meth:`~detectors.base.Detector.migrate`) and names the detectors it could not, whose
state is then rebuilt from the input's history.

>>> from detectors.events import Event
>>> engine = Engine()
>>> _ = engine.process(Event(kind="access", event_id="e1", ts=1.7e9, principal_id="u-1", action="read"))
>>> state = export_principal(engine, "u-1")
>>> state.profile[2], sorted(state.detectors)[:3]
(1, ['context', 'dormancy', 'drift'])
>>> fresh = Engine()
>>> restore_principal(fresh, "u-1", state), fresh.profiles["u-1"].n_events
([], 1)
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

from detectors.base import Detector, Profile, StateVersionError
from detectors.calibrate import Calibrator
from detectors.engine import Engine

#: the engine's own shared state (besides the detectors' and the calibrators')
ENGINE_SHARED = ("watermark", "_next_sweep", "recent_ids", "older_ids", "duplicates")


@dataclass
class PrincipalState:
    """One principal's state across an engine: plain values, and each detector's export by name."""

    #: (first_ts, last_ts, n_events, peer_group, kind), or None when the engine has forgotten the
    #: principal but a detector still keeps something (dormancy keeps the long-idle)
    profile: tuple[float, float, int, str, str] | None
    #: detector -> event time until which it stays quiet for this principal after a page
    cooldowns: dict[str, float] = field(default_factory=dict)
    #: detector -> (its state version, its export)
    detectors: dict[str, tuple[int, Any]] = field(default_factory=dict)


def export_principal(engine: Engine, principal_id: str) -> PrincipalState | None:
    """Everything the engine keeps about one principal (live objects, not copies), or None."""
    profile = engine.profiles.get(principal_id)
    cooldowns = {}
    detectors = {}
    for detector in engine.detectors:
        until = engine.cooldown_until.get((detector.name, principal_id))
        if until is not None:
            cooldowns[detector.name] = until
        exported = detector.export(principal_id)
        if exported is not None:
            detectors[detector.name] = (detector.state_version, exported)
    if profile is None and not detectors:
        return None
    plain = None if profile is None else (profile.first_ts, profile.last_ts, profile.n_events, profile.peer_group,
                                          profile.kind)
    return PrincipalState(plain, cooldowns, detectors)


def restore_principal(engine: Engine, principal_id: str, state: PrincipalState) -> list[str]:
    """Put one principal's state into ``engine`` (replacing any); return the detectors whose state was
    written under a layout they cannot migrate (they keep nothing about the principal then)."""
    if state.profile is not None:
        first_ts, last_ts, n_events, peer_group, kind = state.profile
        # interned: a record's strings are its own copies, one per principal restored
        engine.profiles[principal_id] = Profile(first_ts=first_ts, last_ts=last_ts, n_events=n_events,
                                                peer_group=sys.intern(peer_group), kind=sys.intern(kind),
                                                key=principal_id)
    for name, until in state.cooldowns.items():
        engine.cooldown_until[(name, principal_id)] = until
    failed = []
    for detector in engine.detectors:
        entry = state.detectors.get(detector.name)
        if entry is None:
            continue
        try:
            detector.restore(principal_id, tuple(_current(detector, entry, shared=False)))
        except (StateVersionError, ValueError, TypeError):  # a layout that does not fit: as no migration
            failed.append(detector.name)
    return failed


def _current(detector: Detector, entry: tuple[int, Any], shared: bool) -> Any:
    """A detector's stored state (version, values) in the layout of this version (migrated if older)."""
    version, values = entry
    return values if version == detector.state_version else detector.migrate(version, values, shared=shared)


def export_shared(engine: Engine) -> dict[str, Any]:
    """What the engine keeps that is no one principal's: its own, the calibrators', and each
    detector's (with its state version), by name."""
    return {
        "engine": {name: getattr(engine, name) for name in ENGINE_SHARED},
        "calibrators": dict(engine.calibrators),
        "detectors": {d.name: (d.state_version, d.shared_state()) for d in engine.detectors},
    }


def restore_shared(engine: Engine, shared: dict[str, Any]) -> list[str]:
    """Put :func:`export_shared`'s state into ``engine``; return the detectors whose shared state could
    not be migrated (they start afresh). Detectors the state has no entry for (newly enabled) start
    afresh too, without being named."""
    for name, value in shared.get("engine", {}).items():
        if name in ENGINE_SHARED:
            setattr(engine, name, value)
    for name, calibrator in shared.get("calibrators", {}).items():
        if name in engine.calibrators:
            engine.calibrators[name] = calibrator
    failed = []
    for detector in engine.detectors:
        entry = shared.get("detectors", {}).get(detector.name)
        if entry is None:
            continue
        try:
            detector.restore_shared(_current(detector, entry, shared=True))
        except (StateVersionError, AttributeError, TypeError, ValueError):
            failed.append(detector.name)
    for name in failed:  # half-restored: start afresh (its principals' state goes too: it is rebuilt)
        replace_detector(engine, engine.detectors[[d.name for d in engine.detectors].index(name)].clone())
    engine._plan()  # the calibrators may be new objects
    return failed


def replace_detector(engine: Engine, detector: Detector, calibrator: Calibrator | None = None) -> None:
    """Put ``detector`` in place of the engine's detector of the same name (and its calibrator, when
    given): a detector that starts afresh, or one rebuilt from the input's history."""
    names = [d.name for d in engine.detectors]
    engine.detectors[names.index(detector.name)] = detector
    if calibrator is not None:
        engine.calibrators[detector.name] = calibrator
    engine._shift = next((d for d in engine.detectors if hasattr(d, "is_peer_shift")), None)
    engine._plan()


def principal_ids(engine: Engine) -> set[str]:
    """Every principal the engine or any of its detectors keeps something about."""
    ids = set(engine.profiles)
    for detector in engine.detectors:
        for name in detector.per_principal:
            ids.update(getattr(detector, name))
    return ids
