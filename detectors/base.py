"""The shape every detector follows: score, then decide, then learn (River's ``AnomalyFilter``)."""

from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass, field
from typing import Any, ClassVar

from mypy_extensions import mypyc_attr

from detectors.compact import restore_slots, slot_state
from detectors.events import Event


class StateVersionError(ValueError):
    """Learned state written under a layout this version cannot migrate (:meth:`Detector.migrate`)."""


def _state_of(obj: object) -> dict[str, Any]:
    """An object's attributes by name, compiled or not (a compiled class has no ``__dict__``, and both
    builds give ``__getstate__``)."""
    state = obj.__getstate__()  # type: ignore[attr-defined]
    return dict(state) if isinstance(state, dict) else {}


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)  # see detectors/native.py
@dataclass(slots=True)
class Profile:
    """What the engine knows about one principal, shared read-only with every detector.

    ``last_ts`` is the event time of the principal's *previous* event while detectors score the
    current one (so dormancy can be measured); the engine updates it after learning.
    """

    first_ts: float
    last_ts: float
    n_events: int = 0
    peer_group: str = "-/-"
    kind: str = "human"
    #: the engine's one copy of the principal's id, which every detector keys its records by (the
    #: engine hands it on to each event); not pickled: the key of the dictionary holding the profile
    key: str = ""

    def history_days(self, now: float) -> float:
        return (now - self.first_ts) / 86_400.0

    def __getstate__(self) -> dict[str, Any]:
        return slot_state(self, _PROFILE_FIELDS)

    def __setstate__(self, state: Any) -> None:
        self.key = ""  # set again by the engine at the principal's next event
        restore_slots(self, state)


#: Profile's fields: its pickled state (the same for the compiled and the pure build)
_PROFILE_FIELDS = ("first_ts", "last_ts", "n_events", "peer_group", "kind")


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)  # see detectors/native.py
@dataclass(slots=True)
class Finding:
    """A detector's claim that one event is anomalous, with the numbers that explain it.

    ``score`` is the raw score (higher = more anomalous) that the calibrator turns into a
    severity; ``min_severity`` lets rule-like findings (a self-granted admin role) page whatever
    the score history says, ``max_severity`` keeps report-only findings (drift) below paging.
    ``needs_history`` is False for findings that stand without a baseline.
    ``peer_shift`` is set when the principal's peer group is doing the same thing right now;
    ``beyond_shift`` marks a finding too extreme for any shift of the whole group to explain (a
    bulk export of a hundred times the usual size during a busy quarter end), which is not damped.
    """

    detector: str
    event: Event
    score: float
    title: str
    reasons: list[str]
    evidence_event_ids: list[str]
    baseline: dict[str, Any] = field(default_factory=dict)
    resource_ids: list[str] = field(default_factory=list)
    related_principal_ids: list[str] = field(default_factory=list)
    min_severity: float = 0.0
    max_severity: float = 100.0
    needs_history: bool = True
    peer_shift: bool = False
    beyond_shift: bool = False

    def __getstate__(self) -> dict[str, Any]:
        return slot_state(self, _FINDING_FIELDS)

    def __setstate__(self, state: Any) -> None:
        restore_slots(self, state)


#: Finding's fields: its pickled state (the same for the compiled and the pure build)
_FINDING_FIELDS = (
    "detector", "event", "score", "title", "reasons", "evidence_event_ids", "baseline", "resource_ids",
    "related_principal_ids", "min_severity", "max_severity", "needs_history", "peer_shift", "beyond_shift",
)


# Not serializable=True: detectors are pickled as mypyc's "implicitly serializable" classes (every
# constructor argument has a default, unpickling runs ``__init__()`` and then sets the state), because
# serializable=True on a base without allow_interpreted_subclasses on each subclass keeps the
# subclasses' ``__init__`` from running at all when called from Python (mypyc 2.x).
@mypyc_attr(allow_interpreted_subclasses=True)
class Detector:
    """Base class: constructor arguments are stored unchanged (so :meth:`clone` works); learned
    state lives in other attributes.

    Subclasses implement :meth:`score_one` (must not change state) and :meth:`learn_one`
    (``flagged`` is True when the event raised a paging finding; anomalies are not learned as
    normal), and :meth:`forget` to drop an idle principal's state.
    """

    name: ClassVar[str] = "detector"
    #: event kinds this detector looks at; the engine skips the others without a call
    event_kinds: ClassVar[frozenset[str]] = frozenset({"access", "permission"})
    #: True when a shift the whole peer group makes can explain this detector's findings
    #: (the engine then asks the drift detector and damps such findings)
    shift_sensitive: ClassVar[bool] = False
    #: the attributes holding per-principal state, each a dict keyed by principal id: what
    #: :meth:`export` and :meth:`restore` move one principal at a time (a checkpoint writes only the
    #: principals that changed), and what :meth:`shared_state` leaves out
    per_principal: ClassVar[tuple[str, ...]] = ()
    #: the layout of this detector's learned state (per principal and shared): bump it when the layout
    #: changes, and teach :meth:`migrate` the old one (stream/state restores by it, docs/state.md)
    state_version: ClassVar[int] = 1
    #: the oldest state version whose values load as they are: their records read the older layout
    #: themselves when unpickled (``__setstate__``), so :meth:`migrate` has nothing to do (0: none)
    loads_from_version: ClassVar[int] = 0

    def score_one(self, event: Event, profile: Profile) -> Finding | None:
        raise NotImplementedError

    def learn_one(self, event: Event, profile: Profile, flagged: bool = False) -> None:
        raise NotImplementedError

    def forget(self, principal_id: str) -> None:
        """Drop everything kept about one principal (idle TTL or memory budget)."""

    def n_principals(self) -> int:
        return 0

    def export(self, principal_id: str) -> tuple[Any, ...] | None:
        """Everything kept about one principal, one value per :attr:`per_principal` attribute (None where
        it has nothing), or None when nothing at all. The live objects, not copies: encode them before
        the principal's next event."""
        values = tuple([getattr(self, name).get(principal_id) for name in self.per_principal])
        for value in values:
            if value is not None:
                return values
        return None

    def restore(self, principal_id: str, state: tuple[Any, ...]) -> None:
        """Take back what :meth:`export` gave for one principal (replacing what is kept about it)."""
        for name, value in zip(self.per_principal, state, strict=True):
            table = getattr(self, name)
            if value is None:
                table.pop(principal_id, None)
            else:
                table[principal_id] = value

    def partial(self) -> Any:
        """This detector's cross-principal aggregates that other partitions read (peer groups,
        resources, departments): one picklable object of live parts, or None when it has none (or
        keeps them to itself). Only this detector mutates them; they persist with :meth:`shared_state`."""
        return None

    def view(self, others: list[Any]) -> None:
        """The other partitions' :meth:`partial` objects (never mutated; replaces the previous view).
        A detector with a partial reads its own aggregates plus these: counts add, means pool."""

    def shared_state(self) -> dict[str, Any]:
        """The learned state that is no one principal's (peer groups, the organisation, models), by
        attribute: neither a constructor argument nor one of :attr:`per_principal`, nor the view of
        other partitions' aggregates (``others_``: never persisted)."""
        skip = set(self._get_params()) | set(self.per_principal) | {"others_"}
        return {name: value for name, value in _state_of(self).items() if name not in skip}

    def restore_shared(self, state: dict[str, Any]) -> None:
        """Take back :meth:`shared_state` (into a detector built with the current parameters)."""
        for name, value in state.items():
            setattr(self, name, value)

    def migrate(self, version: int, state: Any, shared: bool) -> Any:
        """``state`` (one principal's :meth:`export`, or :meth:`shared_state` when ``shared``) written under
        state layout ``version``, in the current layout; :class:`StateVersionError` when that cannot be
        done (the state is then rebuilt from the input's retained history)."""
        if 0 < self.loads_from_version <= version < self.state_version:
            return state
        raise StateVersionError(f"{self.name}: no migration from state version {version} to {self.state_version}")

    def _get_params(self) -> dict[str, Any]:
        # The class's signature, not ``__init__``'s: a class compiled by mypyc carries it as text
        # while its ``__init__`` shows only ``*args, **kwargs`` (tests/test_native.py checks both agree).
        names = inspect.signature(type(self)).parameters
        return {name: getattr(self, name) for name in names}

    def clone(self) -> Detector:
        """A fresh, unfitted copy with the same parameters."""
        return type(self)(**copy.deepcopy(self._get_params()))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._get_params().items())
        return f"{type(self).__name__}({args})"
