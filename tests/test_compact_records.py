"""Per-principal records made smaller (docs/sizing.md): the state written under the old layouts still
restores, and gives the same alerts as the state kept in the new one."""

from __future__ import annotations

import pickle
from array import array

from detector_streams import routine

from detectors.compact import DistinctCounter, SeenSet
from detectors.drift import Drift
from detectors.engine import Engine
from detectors.export_mix import NO_EXPORTS
from detectors.portable import export_principal, principal_ids, restore_principal
from detectors.slow_exfiltration import SlowExfiltration
from detectors.subjects import Subjects


def _fed(days: int = 6) -> tuple[Engine, list]:
    events = routine(seed=11, days=days, per_day=20)
    cut = len(events) * 2 // 3
    engine = Engine()
    for event in events[:cut]:
        engine.process(event)
    return engine, events[cut:]


def _detector(engine: Engine, name: str):
    return next(d for d in engine.detectors if d.name == name)


def test_drift_migrates_a_principals_day_kept_as_a_list() -> None:
    engine, later = _fed()
    drift = _detector(engine, "drift")
    pid = next(iter(drift.days_))
    day = drift.days_[pid]
    old = ([day.day, day.count, day.usual, day.days, day.surged],)  # state version 1's export
    fresh = Drift()
    fresh.restore(pid, fresh.migrate(1, old, shared=False))
    assert pickle.dumps(fresh.days_[pid]) == pickle.dumps(day)
    assert fresh.migrate(1, {"x": 1}, shared=True) == {"x": 1}


def test_subjects_loads_the_windows_of_state_version_2() -> None:
    """Version 2 pickled a window as a dict of its attributes with a separate counter."""
    engine, _ = _fed()
    subjects = _detector(engine, "subjects")
    pid, st = next(iter(subjects.state_.items()))
    window = st.hour
    counter = DistinctCounter()
    counter.bits, counter.ones = bytearray(window.bits), window.ones
    old = {"start": window.start, "counter": counter, "plain": window.plain, "prev": window.prev,
           "flagged": window.flagged, "first_event": window.first_event}
    copy = type(window).__new__(type(window))
    copy.__setstate__(old)
    assert copy.__getstate__() == window.__getstate__()
    assert Subjects().migrate(2, "state", shared=False) == "state"  # loads_from_version: nothing to do


def test_a_principal_without_exports_shares_the_empty_mix_and_restores_to_it() -> None:
    engine, _ = _fed()
    slow = _detector(engine, "slow_exfiltration")
    quiet = [pid for pid, st in slow.state_.items() if not st.mix.resources]
    assert quiet and all(slow.state_[pid].mix is NO_EXPORTS for pid in quiet)
    assert not NO_EXPORTS.resources  # never changed
    restored = pickle.loads(pickle.dumps(slow.state_[quiet[0]]))
    assert restored.mix is NO_EXPORTS


def test_slow_exfiltration_loads_the_arrays_of_state_version_2() -> None:
    """Version 2 pickled the window's and the mix's numbers as arrays; version 3 as bytes."""
    engine, _ = _fed(days=10)
    slow = _detector(engine, "slow_exfiltration")
    st = next(st for st in slow.state_.values() if st.mix.resources and len(st.window.recent))
    window, mix = st.window, st.mix
    old_window = type(window).__new__(type(window))
    old_window.__setstate__((window.days, array("i", window.recent), window.hist_exports, window.hist_accesses,
                             window.hist_days, window.held))
    old_mix = type(mix).__new__(type(mix))
    old_mix.__setstate__((list(mix.resources), array("f", mix.before), array("H", mix.counts)))
    assert old_window.__getstate__() == window.__getstate__() and old_mix.__getstate__() == mix.__getstate__()
    assert SlowExfiltration().migrate(2, "state", shared=False) == "state"


def test_restored_principals_share_their_peer_group_string_and_alert_the_same() -> None:
    engine, later = _fed()
    fresh = Engine()
    fresh.calibrators = pickle.loads(pickle.dumps(engine.calibrators))
    fresh._plan()
    for detector, mine in zip(engine.detectors, fresh.detectors, strict=True):
        mine.restore_shared(pickle.loads(pickle.dumps(detector.shared_state())))
    for name in ("watermark", "_next_sweep"):
        setattr(fresh, name, getattr(engine, name))
    for pid in principal_ids(engine):
        state = export_principal(engine, pid)
        assert state is not None
        restore_principal(fresh, pid, pickle.loads(pickle.dumps(state)))
    groups = {}
    for profile in fresh.profiles.values():
        assert groups.setdefault(profile.peer_group, profile.peer_group) is profile.peer_group
    assert [a for e in later for a in fresh.process(e)] == [a for e in later for a in engine.process(e)]


def test_context_and_dormancy_load_the_seen_sets_of_state_version_2() -> None:
    """Version 2's records held a SeenSet under ``seen``; version 3's records are their seen-set."""
    engine, _ = _fed()
    for name in ("context", "dormancy"):
        detector = _detector(engine, name)
        record = next(st for st in detector.state_.values() if len(st))
        state = record.__getstate__()
        old_seen = SeenSet()
        old_seen.__setstate__(state["seen"])
        old = type(record).__new__(type(record))
        old.__setstate__({**state, "seen": old_seen})
        assert old.__getstate__() == state and old.seen is old and list(old) == list(record)
        assert detector.migrate(2, "state", shared=False) == "state"


def test_every_detector_keys_a_principal_by_the_engines_one_copy_of_its_id() -> None:
    """Decoded events each bring their own copy of the id (as here: rebuilt strings)."""
    engine = Engine()
    for event in routine(seed=12, days=3, per_day=15):
        event.principal_id = "".join(list(event.principal_id))
        engine.process(event)
    copies: dict[str, set[int]] = {pid: {id(pid)} for pid in engine.profiles}
    for detector in engine.detectors:
        for name in detector.per_principal:
            for pid in getattr(detector, name):
                copies.setdefault(pid, set()).add(id(pid))
    assert copies and all(len(ids) == 1 for ids in copies.values())
    assert all(profile.key is pid for pid, profile in engine.profiles.items())
