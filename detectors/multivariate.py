"""What the single-signal detectors miss: a River ``HalfSpaceTrees`` over per-principal hourly
window features (events, records, distinct resources, subjects, export and denied shares, data
sensitivity, night, and volume relative to the principal's own usual window).

Model work happens at window granularity, not per event: a window is scored while it grows (when
its event count reaches ``first_checkpoint``, then doubles: 16, 32, 64, ...) and, once it closes,
kept for the trees (a sample of closed windows, unless flagged). The trees learn only when a score
needs them (:meth:`Multivariate._trees`): half-space trees score against the masses of their last
complete window of ``window_size`` examples, so only that window is learned, then.
One model serves the partition; the features relative to each principal's own baseline make it
personal.
"""

from __future__ import annotations

import copyreg
import math
from array import array
from typing import Any, Final

from mypy_extensions import mypyc_attr
from river import anomaly
from river.tree.padded import PaddedBranch

from detectors.base import Detector, Finding, Profile
from detectors.compact import EW, find_key, restore_slots, slot_state
from detectors.days import HOUR_S
from detectors.events import SENSITIVITY_RANK, Event
from detectors.volume import EXPORT_ACTIONS

#: distinct resources a window counts (their hashes, 4 bytes each, in ``_Window.resources``)
MAX_RESOURCES: Final = 16

FEATURES: Final = (
    "events",
    "records",
    "resources",
    "subjects",
    "exports",
    "denied",
    "sensitivity",
    "night",
    "rel_events",
    "rel_records",
)


#: _Window's attributes (its ``__slots__``; also what its pickled state names)
_WINDOW_SLOTS = (
        "start",
        "events",
        "records",
        "subjects",
        "exports",
        "denied",
        "rank",
        "night",
        "resources",
        "flagged",
        "first_event",
        "ev_base",
        "rec_base",
    )


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)  # see detectors/native.py
class _Window:
    __slots__ = _WINDOW_SLOTS

    def __init__(self, start: float) -> None:
        self.ev_base = EW()
        self.rec_base = EW()
        self.reset(start)

    def __getstate__(self) -> dict[str, Any]:
        return slot_state(self, _WINDOW_SLOTS)

    def __setstate__(self, state: Any) -> None:
        names = dict(state[1] if isinstance(state, tuple) else state)
        resources = names.get("resources", b"")
        if isinstance(resources, array):  # snapshot formats 7 and earlier kept an array("I")
            names["resources"] = b"".join([key.to_bytes(4, "little") for key in resources])
        restore_slots(self, names)

    def reset(self, start: float) -> None:
        self.start = start
        self.events = self.records = self.subjects = self.exports = self.denied = self.rank = self.night = 0
        #: the window's first MAX_RESOURCES distinct resources' hashes, 4 little-endian bytes each (find_key)
        self.resources = b""
        self.flagged = False
        self.first_event = ""


def _reduce_branch(node: PaddedBranch) -> tuple[type, tuple[Any, ...]]:
    """Pickle a half-space-tree branch as a call to its constructor, registered with ``copyreg``.

    By default pickle saves and restores each node's ``__dict__``. Reading it gives the live node a
    separate dictionary, and so does restoring it; CPython then reads and writes the node's attributes
    by dictionary lookup instead of at fixed offsets, and River's interpreted tree walk runs about half
    as fast (measured: 25 against 13 us per ``learn_one``, 27 against 19 us per ``score_one``). Through
    the constructor, neither happens. Snapshots hold trees only while a detector restored from format
    6 or earlier still learns with the trees it restored (``Multivariate.legacy_``).
    """
    left, right = node.children
    return PaddedBranch, (left, right, node.feature, node.threshold, node.l_mass, node.r_mass)


copyreg.pickle(PaddedBranch, _reduce_branch)


#: what a Multivariate detector's snapshot holds besides its parameters (the trees built for scoring
#: are not: they are rebuilt from the kept examples when next needed)
_LEARNED: Final = ("n_learned_", "n_closed_", "examples_", "first_example_", "legacy_", "state_")


def _clip(x: float) -> float:
    return 0.0 if x < 0.0 else 1.0 if x > 1.0 else x


class Multivariate(Detector):
    """Half-space trees over hourly window features, scored at growth checkpoints."""

    name = "multivariate"
    per_principal = ("state_",)
    event_kinds = frozenset({"access"})
    shift_sensitive = True

    def __init__(
        self,
        n_trees: int = 10,
        height: int = 8,
        window_size: int = 250,
        learn_every: int = 4,
        seed: int = 42,
        alpha: float = 0.05,
        min_windows: int = 10,
        min_score: float = 0.95,
        min_relative: float = 0.75,
        first_checkpoint: int = 16,
        page: bool = False,
    ):
        self.n_trees = n_trees
        self.height = height
        self.window_size = window_size
        self.learn_every = learn_every
        self.seed = seed
        self.alpha = alpha
        self.min_windows = min_windows
        self.min_score = min_score
        self.min_relative = min_relative
        self.first_checkpoint = first_checkpoint
        self.page = page
        #: windows kept for the trees (a sample of closed windows), numbered from 0 in the order kept
        self.n_learned_ = 0
        self.n_closed_ = 0
        #: the kept windows' features (len(FEATURES) values each, in FEATURES order) from number
        #: ``first_example_`` on: the trees' last complete window of ``window_size`` examples, and the
        #: one filling up (see :meth:`_trees`)
        self.examples_ = array("d")
        self.first_example_ = 0
        #: trees restored from a snapshot of format 6 or earlier, which kept no examples: they learn each
        #: new one until the examples cover a complete window of the trees' own
        self.legacy_: Any = None
        self.state_: dict[str, _Window] = {}
        self._trees_built: Any = None  # derived: the trees last built for scoring (not pickled)
        self._trees_window = -1  # the window of examples they learned

    def __getstate__(self) -> dict[str, Any]:
        state = self._get_params()
        state.update((name, getattr(self, name)) for name in _LEARNED)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        trees = state.pop("model_", None)  # formats 6 and earlier: the live trees, and the examples
        waiting = state.pop("unlearned_", [])  # (format 6) not yet learned by them
        for name, value in state.items():
            setattr(self, name, value)
        if trees is not None:
            for x in waiting:
                trees.learn_one(x)
            self.examples_, self.first_example_, self.legacy_ = array("d"), self.n_learned_, trees
        self._trees_built, self._trees_window = None, -1

    def _new_trees(self) -> Any:
        return anomaly.HalfSpaceTrees(n_trees=self.n_trees, height=self.height, window_size=self.window_size,
                                      limits={f: (0.0, 1.0) for f in FEATURES}, seed=self.seed)

    def _keep(self, x: dict[str, float]) -> None:
        """Keep a closed window's features for the trees, and let go of those no score can need now."""
        self.examples_.extend([x[f] for f in FEATURES])
        self.n_learned_ += 1
        if self.legacy_ is not None:
            self.legacy_.learn_one(x)
        first = (self.n_learned_ // self.window_size - 1) * self.window_size  # the last complete window's
        if first > self.first_example_:
            del self.examples_[: (first - self.first_example_) * len(FEATURES)]
            self.first_example_ = first
        if first >= self.first_example_:
            self.legacy_ = None

    def _trees(self) -> Any:
        """Trees that score as trees having learned every kept example in order would (``n_learned_`` is at
        least ``window_size``).

        River's ``HalfSpaceTrees`` counts each example it learns into every tree's nodes (``l_mass``); each
        ``window_size`` examples it moves those counts to ``r_mass`` and counts afresh. A score reads
        ``r_mass`` alone (``l_mass`` only for a feature an example lacks; ours have them all), and the
        splits come from the seed alone. Trees that have learned just the last complete window therefore
        score exactly as trees that have learned every example. Those are made here when a score needs
        them and the window has moved since: the trees built for the last score (or new ones, same seed)
        learn the window, whose last example moves its counts to ``r_mass`` over the older window's.
        Learning each example as it came cost about 19 us per window kept (a tenth of the events on the
        bench's stream); scores are rare.
        """
        window = self.n_learned_ // self.window_size - 1
        first = window * self.window_size
        if first < self.first_example_:
            return self.legacy_  # restored from an older snapshot: their last complete window is this one
        if window != self._trees_window:
            if self._trees_built is None:
                self._trees_built = self._new_trees()
            learn, width, values = self._trees_built.learn_one, len(FEATURES), self.examples_
            at = (first - self.first_example_) * width
            for _ in range(self.window_size):
                learn(dict(zip(FEATURES, values[at:at + width], strict=True)))
                at += width
            self._trees_window = window
        return self._trees_built

    def _features(self, w: _Window) -> dict[str, float]:
        ev, rec = math.log1p(w.events), math.log1p(w.records)
        return {
            "events": _clip(ev / 7.0),
            "records": _clip(rec / 15.0),
            "resources": (len(w.resources) >> 2) / MAX_RESOURCES,
            "subjects": _clip(math.log1p(w.subjects) / 8.0),
            "exports": w.exports / max(w.events, 1),
            "denied": w.denied / max(w.events, 1),
            "sensitivity": w.rank / 3.0,
            "night": float(w.night > w.events / 2),
            "rel_events": _clip((ev - w.ev_base.mean) / 4.0 + 0.5) if w.ev_base.n else 0.5,
            "rel_records": _clip((rec - w.rec_base.mean) / 8.0 + 0.5) if w.rec_base.n else 0.5,
        }

    def score_one(self, event: Event, profile: Profile) -> Finding | None:
        w = self.state_.get(event.principal_id)
        if w is None or event.ts >= w.start + HOUR_S or w.ev_base.n < self.min_windows:
            return None
        n = w.events + 1
        if n < self.first_checkpoint or n & (n - 1) or self.n_learned_ < self.window_size:
            return None  # only at 16, 32, 64, ... events in the window
        probe = _Window(w.start)
        self._add(probe, w, event)
        probe.ev_base, probe.rec_base = w.ev_base, w.rec_base
        x = self._features(probe)
        if min(x["rel_events"], x["rel_records"]) < self.min_relative:
            return None
        score = self._trees().score_one(x)
        if score < self.min_score:
            return None
        top = sorted(FEATURES, key=lambda f: -abs(x[f] - 0.5) if f.startswith("rel_") else -x[f])[:4]
        return Finding(
            detector=self.name,
            event=event,
            score=10.0 * score,
            title="Unusual hour of activity",
            reasons=[
                f"this hour so far: {probe.events} events, {probe.records:,} records, {len(probe.resources) >> 2} "
                f"resources, {probe.subjects:,} subjects, {probe.exports} exports, {probe.denied} denied",
                f"this principal's usual hour: {math.expm1(w.ev_base.mean):.0f} events, "
                f"{math.expm1(w.rec_base.mean):,.0f} records",
                f"half-space-tree anomaly score {score:.2f} (of 1); most unusual features: " + ", ".join(top),
            ],
            evidence_event_ids=[e for e in (w.first_event, event.event_id) if e],
            baseline={
                "usual_events_per_hour": round(math.expm1(w.ev_base.mean), 1),
                "usual_records_per_hour": round(math.expm1(w.rec_base.mean)),
            },
            # report-only by default: on simulated streams its pages were mostly false (busy hours of
            # heavy users); it adds context to what the single-signal detectors page on
            max_severity=100.0 if self.page else 45.0,
        )

    @staticmethod
    def _add(target: _Window, source: _Window, event: Event) -> None:
        """``target`` := ``source`` + ``event`` (source may be target)."""
        target.events = source.events + 1
        target.records = source.records + event.records
        target.subjects = source.subjects + (len(event.subject_refs) or event.subjects)
        target.exports = source.exports + (event.action in EXPORT_ACTIONS)
        target.denied = source.denied + (event.outcome == "denied")
        target.rank = max(source.rank, SENSITIVITY_RANK.get(event.sensitivity, 0))
        hour = event.local_hour
        target.night = source.night + (hour >= 22 or hour < 6)
        resources, h = source.resources, event.resource_hash
        if len(resources) < MAX_RESOURCES << 2 and find_key(resources, h) < 0:
            resources += h.to_bytes(4, "little")
        target.resources = resources

    def learn_one(self, event: Event, profile: Profile, flagged: bool = False) -> None:
        w = self.state_.get(event.principal_id)
        if w is None:
            w = self.state_[event.principal_id] = _Window(event.ts - event.ts % HOUR_S)
        elif event.ts >= w.start + HOUR_S:
            self._close(w)
            w.reset(event.ts - event.ts % HOUR_S)
        self._add(w, w, event)
        w.flagged = w.flagged or flagged
        if not w.first_event:
            w.first_event = event.event_id

    def _close(self, w: _Window) -> None:
        if w.flagged or not w.events:
            return
        self.n_closed_ += 1
        if self.n_closed_ % self.learn_every == 0:  # a sample of closed windows is reference enough
            self._keep(self._features(w))
        w.ev_base.update(math.log1p(w.events), self.alpha)
        w.rec_base.update(math.log1p(w.records), self.alpha)

    def forget(self, principal_id: str) -> None:
        self.state_.pop(principal_id, None)

    def n_principals(self) -> int:
        return len(self.state_)
