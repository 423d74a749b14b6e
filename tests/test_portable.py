"""An engine rebuilt from its shared state and each principal's state, pickled apart, goes on exactly
as the original (what incremental checkpoints rely on); layouts it cannot migrate are named."""

from __future__ import annotations

import pickle

import pytest
from detector_streams import routine

from detectors.base import StateVersionError
from detectors.engine import Engine
from detectors.portable import export_principal, export_shared, principal_ids, restore_principal, restore_shared
from detectors.volume import Volume


def _rebuilt(engine: Engine) -> Engine:
    fresh = Engine()
    assert restore_shared(fresh, pickle.loads(pickle.dumps(export_shared(engine)))) == []
    for pid in sorted(principal_ids(engine), reverse=True):
        state = export_principal(engine, pid)
        assert state is not None
        assert restore_principal(fresh, pid, pickle.loads(pickle.dumps(state))) == []
    return fresh


def test_a_rebuilt_engine_raises_the_same_alerts_as_the_original() -> None:
    events = routine(seed=4, days=14, per_day=20)
    cut = len(events) * 2 // 3
    engine = Engine()
    for event in events[:cut]:
        engine.process(event)
    rebuilt = _rebuilt(engine)
    assert principal_ids(rebuilt) == principal_ids(engine)
    assert {p: v.n_events for p, v in rebuilt.profiles.items()} == {p: v.n_events for p, v in engine.profiles.items()}
    later = events[cut:]
    assert [a for e in later for a in rebuilt.process(e)] == [a for e in later for a in engine.process(e)]


def test_changes_are_tracked_and_a_principal_is_captured_before_it_changes() -> None:
    events = routine(seed=5, days=3, per_day=10)
    engine = Engine()
    captured: dict[str, int] = {}
    engine.track_changes(lambda pid: captured.setdefault(pid, engine.profiles[pid].n_events))
    for event in events[:200]:
        engine.process(event)
    assert engine.changed == {e.principal_id for e in events[:200]}
    cut = dict.fromkeys(engine.changed)  # a checkpoint's cut: these are written as they are now
    counts = {pid: engine.profiles[pid].n_events for pid in cut}
    engine.capture_first, engine.changed = set(cut), set()
    for event in events[200:400]:
        engine.process(event)
    assert {pid: counts[pid] for pid in captured} == captured  # each captured as of the cut
    assert engine.changed == {e.principal_id for e in events[200:400]}


def test_a_layout_that_cannot_be_migrated_is_named_and_that_detector_starts_afresh() -> None:
    """State written under a state version no migration reads (here: a made-up newer one, as after a
    downgrade; the compiled detectors cannot be subclassed to fake an older one)."""
    events = routine(seed=6, days=4, per_day=10)
    engine = Engine()
    for event in events:
        engine.process(event)
    shared = export_shared(engine)
    version, state = shared["detectors"]["volume"]
    shared["detectors"]["volume"] = (version + 1, state)
    fresh = Engine()
    assert restore_shared(fresh, shared) == ["volume"]
    volume = next(d for d in fresh.detectors if d.name == "volume")
    assert not volume.peers_  # type: ignore[attr-defined]
    pid = events[-1].principal_id
    principal = export_principal(engine, pid)
    assert principal is not None
    version, values = principal.detectors["volume"]
    principal.detectors["volume"] = (version + 1, values)
    assert restore_principal(fresh, pid, principal) == ["volume"]
    assert volume.export(pid) is None and fresh.profiles[pid].n_events == engine.profiles[pid].n_events
    with pytest.raises(StateVersionError, match="no migration from state version 1 to 2"):
        Volume().migrate(1, (), shared=False)
