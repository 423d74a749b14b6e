"""The multivariate detector's half-space trees, learned only when a score needs them, score exactly
as River's trees learning every kept window as it comes; they pickle through their constructor, and
snapshots from before (live trees) carry on."""

from __future__ import annotations

import gc
import pickle
import random
from typing import Any

from detector_streams import T0

from detectors.events import Event


def _holds_a_dict(obj: object) -> bool:
    """Whether ``obj`` keeps its attributes in a separate ``__dict__`` (what reading ``__dict__``, as
    pickle does by default, leaves behind) rather than at fixed offsets (what its constructor gives):
    ``gc.get_referents`` shows which."""
    return any(type(ref) is dict for ref in gc.get_referents(obj))


def test_half_space_trees_pickle_through_their_constructor_and_carry_on_identically() -> None:
    from river.tree.padded import PaddedBranch

    from detectors.multivariate import FEATURES, Multivariate

    def branches(trees: Any) -> list[PaddedBranch]:
        return [n for tree in trees.trees for n in tree.iter_dfs() if isinstance(n, PaddedBranch)]

    rng = random.Random(3)
    rows = [{f: rng.random() for f in FEATURES} for _ in range(700)]
    trees = Multivariate(window_size=50)._new_trees()
    for x in rows[:120]:
        trees.learn_one(x)
    restored = pickle.loads(pickle.dumps(trees))
    # neither the pickled model's nodes nor the restored ones hold a __dict__ of their own
    assert branches(trees) and not any(_holds_a_dict(node) for node in branches(trees))
    assert branches(restored) and not any(_holds_a_dict(node) for node in branches(restored))
    # the window pivot walks ``_tree_nodes``: it must list the restored trees' nodes, or masses go stale
    nodes = [node for tree in restored.trees for node in tree.iter_dfs()]
    pivoted = [node for tree_nodes in restored._tree_nodes for node in tree_nodes]
    assert all(a is b for a, b in zip(pivoted, nodes, strict=True))
    for x in rows[120:]:  # several pivots (window of 50) after the restore
        assert restored.score_one(x) == trees.score_one(x)
        restored.learn_one(x)
        trees.learn_one(x)
    assert pickle.dumps(restored) == pickle.dumps(trees)


def _multivariate_events(n: int, seed: int) -> list[Event]:
    rng = random.Random(seed)
    events, ts = [], T0
    for i in range(n):
        ts += rng.expovariate(1 / 40.0)
        events.append(Event(kind="access", event_id=f"e{i}", ts=ts, principal_id=f"u{rng.randrange(12)}",
                            action=rng.choice(["read", "query", "export"]), records=rng.randrange(1, 5_000),
                            resource_id=f"r{rng.randrange(40)}", outcome="allowed"))
    return events


def _reference(trees: Any) -> list[tuple[Any, ...]]:
    """What half-space trees score with: each node's split and reference mass."""
    return [(getattr(n, "feature", None), getattr(n, "threshold", None), n.r_mass)
            for tree in trees.trees for n in tree.iter_dfs()]


def test_multivariate_scores_with_the_trees_of_every_kept_window() -> None:
    """The trees are built from the last complete window of examples when a score needs them: at every
    score they must hold what River's trees learning each example as it came hold (same splits, same
    reference masses, same scores), across a snapshot, with at most two windows of examples kept."""
    from detectors.base import Profile
    from detectors.multivariate import FEATURES, Multivariate

    detector = Multivariate(window_size=20, learn_every=1, min_windows=3, first_checkpoint=2, min_score=0.0,
                            min_relative=0.0)  # scores often: small model window, every closed window kept
    every, profile, width = detector._new_trees(), Profile(first_ts=T0, last_ts=T0), len(FEATURES)
    rng = random.Random(2)
    probes = [{f: rng.random() for f in FEATURES} for _ in range(5)]
    events = _multivariate_events(6_000, 5)
    scores, built, kept, made = 0, set(), 0, []
    for i, event in enumerate(events):
        if i == len(events) // 2:
            detector = pickle.loads(pickle.dumps(detector))
        finding = detector.score_one(event, profile)
        if finding is not None:
            trees = detector._trees_built
            if not any(trees is other for other in made):
                made.append(trees)
            assert _reference(trees) == _reference(every)
            assert [trees.score_one(p) for p in probes] == [every.score_one(p) for p in probes]
            scores += 1
            built.add(detector._trees_window)
        before = detector.n_learned_
        detector.learn_one(event, profile)
        if detector.n_learned_ > before:  # a window closed and was kept: River learns it as it comes
            every.learn_one(dict(zip(FEATURES, detector.examples_[-width:], strict=True)))
        kept = max(kept, len(detector.examples_))
    assert scores > 100 and len(built) > 3 and kept <= (2 * 20 - 1) * width
    assert len(made) == 2  # trees built once, and again after the snapshot: each new window relearned
    assert "_trees_built" not in detector.__getstate__() and detector.legacy_ is None


def test_multivariate_carries_on_from_a_snapshot_with_live_trees() -> None:
    """A format-6 state (the trees themselves, and a batch of examples they had not learned yet)
    restores: the restored trees score until the kept examples cover a complete window of theirs,
    then trees built from the examples do; both score as trees that learned every example."""
    from detectors.multivariate import FEATURES, Multivariate

    rng = random.Random(11)
    rows = [{f: rng.random() for f in FEATURES} for _ in range(400)]
    probes = rows[-20:]
    for restored_at in (57, 60):  # partway through the trees' window of 20, and at its end
        detector, every = Multivariate(window_size=20), Multivariate(window_size=20)._new_trees()
        state = detector.__getstate__()
        for name in ("examples_", "first_example_", "legacy_"):
            state.pop(name)
        old_trees, waiting = detector._new_trees(), rows[restored_at - 3:restored_at]
        for x in rows[:restored_at - 3]:
            old_trees.learn_one(x)
            every.learn_one(x)
        state.update(model_=old_trees, unlearned_=waiting, n_learned_=restored_at)
        old = Multivariate.__new__(Multivariate)  # what unpickling does, in either build
        old.__setstate__(state)
        for x in waiting:
            every.learn_one(x)
        assert old.legacy_ is old_trees and old.first_example_ == restored_at and not old.examples_
        used_legacy = used_built = 0
        for x in rows[restored_at:300]:
            old._keep(x)
            every.learn_one(x)
            if old.n_learned_ == 70:
                old = pickle.loads(pickle.dumps(old))  # a snapshot taken while the old trees still learn
            trees = old._trees()
            used_legacy += trees is old.legacy_
            used_built += trees is old._trees_built
            assert [trees.score_one(p) for p in probes] == [every.score_one(p) for p in probes]
        assert used_legacy > 0 and used_built > 200 and old.legacy_ is None


def test_a_window_from_a_format_7_snapshot_keeps_its_resources_and_goes_on_counting() -> None:
    """Formats 7 and earlier kept a window's resource hashes in an ``array("I")``; such a window
    restores with them in ``bytes`` (what the detector reads natively since format 8), and counts a
    resource once whichever format it was first seen in."""
    from array import array

    from detectors.base import Profile
    from detectors.compact import find_key, h32
    from detectors.multivariate import Multivariate, _Window

    seen = [h32(f"table-{i}") for i in range(3)]
    detector = Multivariate()
    window = _Window(T0)
    state = window.__getstate__()
    state.update(events=3, resources=array("I", seen))
    old = _Window.__new__(_Window)  # what unpickling does, in either build
    old.__setstate__(state)
    assert isinstance(old.resources, bytes) and [find_key(old.resources, h) for h in seen] == [0, 1, 2]
    detector.state_["u-1"] = old
    profile = Profile(first_ts=T0, last_ts=T0)
    for resource in ("table-1", "table-9"):
        detector.learn_one(Event(kind="access", event_id="e", ts=T0 + 60, principal_id="u-1",
                                 action="read", resource_id=resource), profile)
    again = pickle.loads(pickle.dumps(detector)).state_["u-1"]
    assert (again.events, len(again.resources) >> 2) == (5, 4)
    assert detector._features(again)["resources"] == 4 / 16
