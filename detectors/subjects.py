"""Snooping: many distinct data subjects looked up one by one, against the principal's own usual
number per hour and per day (its peers' usual is shown for context, but does not excuse: a heavy
user's peers do not make a snooper's excess ordinary).

Only *lookups* count (events touching at most ``max_lookup_subjects`` subjects, a handful): a bulk
export of a whole table is the volume detector's business, and a query of a dozen rows is not a look
at individuals; without refs its subjects cannot be told apart either, so counting them overstated
the distinct subjects of busy principals day after day. Distinct subjects are counted in a 64-byte linear
counting bitmap per window (hashed ``subject_refs``; events without refs add their ``subjects``
count). Baselines are kept on the square root of the counts (variance-stabilising for counts,
so quiet hours do not inflate the spread the way they do on a log scale). The hour window slides
approximately: the previous hour counts with a linearly decaying
weight, as in a sliding-window rate limiter.
"""

from __future__ import annotations

import math
from typing import Any, Final

from mypy_extensions import mypyc_attr

from detectors.base import Detector, Finding, Profile
from detectors.compact import EW, DistinctCounter, pooled_get, restore_slots, slot_state
from detectors.days import DAY_S, HOUR_S
from detectors.events import Event
from detectors.peers import View

#: _Window's attributes besides its counter's (``bits``, ``ones``)
_WINDOW_SLOTS = ("start", "plain", "prev", "flagged", "first_event")


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)  # see detectors/native.py
class _Window(DistinctCounter):
    """A window's distinct subjects (it *is* their counter: one object, not two, per window) and the
    rest of its tally. Pickled as a tuple (state version 3); the dict of state version 2, which held
    a separate counter, still loads."""

    __slots__ = _WINDOW_SLOTS

    def __init__(self, start: float) -> None:
        super().__init__()
        self.start = start
        self.plain = 0  # subjects of events without refs (a count, not distinct)
        self.prev = 0.0  # estimate of the previous window, for the sliding approximation
        self.flagged = False
        self.first_event = ""

    def __getstate__(self) -> tuple:
        return (self.start, bytes(self.bits), self.ones, self.plain, self.prev, self.flagged, self.first_event)

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 7:
            start, bits, self.ones, self.plain, self.prev, self.flagged, self.first_event = state
            self.start, self.bits = start, bytearray(bits)
            return
        values = dict(state[1] if isinstance(state, tuple) else state)  # version 2: a dict, with a counter
        counter = values.pop("counter")
        self.bits, self.ones = counter.bits, counter.ones
        restore_slots(self, values)

    def total(self, extra_ones: int = 0, extra_plain: int = 0) -> float:
        """Distinct subjects (with ``extra_ones`` more bits set) plus those counted without refs."""
        return self.estimate(extra_ones) + self.plain + extra_plain


_EMPTY: Final = DistinctCounter()  # never mutated
#: (z, label, estimate, baseline, window) of the strongest window in :meth:`Subjects.score_one`
_Candidate = tuple[float, str, float, EW, _Window]


#: _SubjectState's attributes (its ``__slots__``; also what its pickled state names)
_SUBJECT_STATE_SLOTS = ("hour", "day", "hour_base", "day_base")


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)  # see detectors/native.py
class _SubjectState:
    __slots__ = _SUBJECT_STATE_SLOTS

    def __init__(self, ts: float) -> None:
        self.hour = _Window(ts - ts % HOUR_S)
        self.day = _Window(ts - ts % DAY_S)
        self.hour_base = EW()
        self.day_base = EW()

    def __getstate__(self) -> dict[str, Any]:
        return slot_state(self, _SUBJECT_STATE_SLOTS)

    def __setstate__(self, state: Any) -> None:
        restore_slots(self, state)


class Subjects(Detector):
    """Flags a principal whose distinct-subject count in the last hour or day is far above its own
    usual count (both ``min_ratio`` times the usual top and ``min_typical_ratio`` times the typical).

    >>> from detectors.base import Profile
    >>> d, p = Subjects(), Profile(first_ts=0.0, last_ts=0.0)
    >>> t, n = 0.0, 0
    >>> for day in range(10):
    ...     for i in range(30):
    ...         t = day * 86_400 + 32_400 + i * 900
    ...         e = Event(kind="access", event_id=f"e{n}", ts=t, principal_id="u",
    ...                   subject_refs=(f"s{n % 40}",))
    ...         d.learn_one(e, p); n += 1
    >>> found = None
    >>> for i in range(200):
    ...     e = Event(kind="access", event_id=f"x{i}", ts=t + 86_400 + i * 20, principal_id="u",
    ...               subject_refs=(f"v{i}",))
    ...     found = found or d.score_one(e, p)
    ...     d.learn_one(e, p, flagged=found is not None)
    >>> found.title
    'Many distinct data subjects looked up'
    """

    name = "subjects"
    per_principal = ("state_",)
    state_version = 3  # a window is its own counter (2: it held one; 1: before issue 31, rebuilt from history)
    loads_from_version = 2  # version 2's windows load as version 3's (_Window.__setstate__)
    event_kinds = frozenset({"access"})
    shift_sensitive = True

    def __init__(
        self,
        alpha: float = 0.05,
        max_lookup_subjects: int = 5,
        min_z: float = 3.5,
        min_ratio: float = 2.0,
        min_typical_ratio: float = 3.5,
        min_distinct_hour: int = 80,
        min_distinct_day: int = 150,
        min_history: int = 5,
        std_floor: float = 1.0,
    ):
        self.alpha = alpha
        self.max_lookup_subjects = max_lookup_subjects
        self.min_z = min_z
        self.min_ratio = min_ratio
        self.min_typical_ratio = min_typical_ratio
        self.min_distinct_hour = min_distinct_hour
        self.min_distinct_day = min_distinct_day
        self.min_history = min_history
        self.std_floor = std_floor
        self.state_: dict[str, _SubjectState] = {}
        self.peers_: dict[tuple[str, str], EW] = {}
        #: the other partitions' partials (their ``peers_``), read with these: never persisted
        self.others_ = View()

    def partial(self) -> dict[tuple[str, str], EW]:
        """The peer groups' baselines (live objects)."""
        return self.peers_

    def view(self, others: list[Any]) -> None:
        self.others_ = View(tuple(others))

    def _peers(self, key: tuple[str, str]) -> EW | None:
        """The peer group's baseline pooled over the partitions (:meth:`EW.pooled`)."""
        return pooled_get(self.peers_, self.others_.parts, key)

    def _is_lookup(self, event: Event) -> bool:
        n = len(event.subject_refs) or event.subjects
        return 0 < n <= self.max_lookup_subjects and event.outcome == "allowed"

    def score_one(self, event: Event, profile: Profile) -> Finding | None:
        if not self._is_lookup(event):
            return None
        st = self.state_.get(event.principal_id)
        if st is None:
            return None
        best = self._better(None, "hour", st.hour, st.hour_base, HOUR_S, self.min_distinct_hour, event, profile)
        best = self._better(best, "day", st.day, st.day_base, DAY_S, self.min_distinct_day, event, profile)
        if best is None:
            return None
        return self._finding(event, profile, *best)

    def _better(
        self, best: _Candidate | None, label: str, window: _Window, base: EW, span: float, floor: float,
        event: Event, profile: Profile,
    ) -> _Candidate | None:
        """The stronger of ``best`` and this window's case (a method called per window: compiled, a
        loop over a tuple of tuples was generic iteration and unpacking, about 400 instructions).

        Own history first: once it has ``min_history`` windows, the principal is judged against them
        alone (a heavy user's peers do not make a snooper's excess ordinary; a whole team's surge is
        the drift detector's to damp), and not before."""
        if base.n < self.min_history:
            return best
        est = self._estimate_with(window, event, span)
        usual, typical = base.upper() ** 2, max(base.mean, 1.0) ** 2
        if est < floor or est < self.min_ratio * usual or est < self.min_typical_ratio * typical:
            return best
        z = base.z(math.sqrt(est), self.std_floor)
        if z >= self.min_z and (best is None or z > best[0]):
            return (z, label, est, base, window)
        return best

    def _estimate_with(self, window: _Window, event: Event, span: float) -> float:
        """Sliding estimate (this window plus a decaying share of the previous one) with ``event``."""
        plain = 0 if event.subject_refs else event.subjects
        if event.ts >= window.start + span:  # the event opens a new window (a window that paged carries nothing)
            prev = window.total() if event.ts < window.start + 2 * span and not window.flagged else 0.0
            elapsed = event.ts % span
            current = _EMPTY.estimate(self._new_ones(_EMPTY, event)) + plain
        else:
            prev, elapsed = window.prev, event.ts - window.start
            current = window.total(self._new_ones(window, event), plain)
        return current + prev * max(0.0, 1.0 - elapsed / span)

    @staticmethod
    def _new_ones(counter: DistinctCounter, event: Event) -> int:
        if not event.subject_refs:
            return 0
        seen: set[int] = set()
        bits, shift = counter.bits, DistinctCounter.SHIFT
        for key in event.subject_hashes:
            pos = key >> shift
            if pos not in seen and not bits[pos >> 3] & (1 << (pos & 7)):  # counter.is_new(key), inlined
                seen.add(pos)
        return len(seen)

    def _finding(
        self, event: Event, profile: Profile, z: float, label: str, est: float, base: EW, window: _Window
    ):
        usual = base.upper() ** 2
        peers = self._peers((profile.peer_group, label))
        peer_usual = peers.upper() ** 2 if peers is not None and peers.n else float("nan")
        return Finding(
            detector=self.name,
            event=event,
            score=z,
            title="Many distinct data subjects looked up",
            reasons=[
                f"about {est:,.0f} distinct data subjects looked up in the last {label}; this principal "
                f"usually looks up at most {usual:,.0f} per active {label} (z={z:.1f})",
                f"peers ({profile.peer_group}) look up at most {peer_usual:,.0f} per active {label}",
            ],
            evidence_event_ids=[e for e in (window.first_event, event.event_id) if e],
            baseline={
                f"observed_subjects_per_{label}": round(est),
                f"usual_subjects_per_{label}": round(usual),
                f"peer_subjects_per_{label}": round(peer_usual),
            },
        )

    def learn_one(self, event: Event, profile: Profile, flagged: bool = False) -> None:
        if not self._is_lookup(event):
            return
        st = self.state_.get(event.principal_id)
        if st is None:
            st = self.state_[event.principal_id] = _SubjectState(event.ts)
        self._learn_window(st.hour, st.hour_base, "hour", HOUR_S, event, profile, flagged)
        self._learn_window(st.day, st.day_base, "day", DAY_S, event, profile, flagged)

    def _learn_window(self, window: _Window, base: EW, label: str, span: float, event: Event, profile: Profile,
                      flagged: bool) -> None:
        if event.ts >= window.start + span:
            self._close(window, base, (profile.peer_group, label), event.ts, span)
        if event.subject_refs:
            for key in event.subject_hashes:
                window.add(key)  # a native call (a stored bound method was a generic Python call)
        else:
            window.plain += event.subjects
        if not window.first_event:
            window.first_event = event.event_id
        window.flagged = window.flagged or flagged

    def _close(self, window: _Window, base: EW, peer_key: tuple[str, str], ts: float, span: float) -> None:
        est = window.total()
        if not window.flagged:  # anomalous windows are not learned as normal
            base.update(math.sqrt(est), self.alpha)
            peers = self.peers_.get(peer_key)
            if peers is None:
                peers = self.peers_[peer_key] = EW()
            peers.update(math.sqrt(est), self.alpha / 4)
        # a window that paged does not carry its count into the next one: that incident is reported
        window.prev = est if ts < window.start + 2 * span and not window.flagged else 0.0
        window.start = ts - ts % span
        window.clear()
        window.plain = 0
        window.flagged = False
        window.first_event = ""

    def forget(self, principal_id: str) -> None:
        self.state_.pop(principal_id, None)

    def n_principals(self) -> int:
        return len(self.state_)
