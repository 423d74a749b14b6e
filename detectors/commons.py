"""Baselines shared across partitions: each engine reads every other partition's aggregates.

A principal lives in exactly one input partition, so its engine keeps its per-principal state; what
no one principal owns (peer groups, resources, departments' activity, severity calibration) each
engine keeps as its *partial* (:meth:`~detectors.engine.Engine.partial`), and reads its own plus
everyone else's (:meth:`~detectors.engine.Engine.view`): counts add, exponentially weighted
statistics pool (:meth:`~detectors.compact.EW.pooled`). Engines in one process see each other's
partials live; partials of partitions another instance owns arrive as copies (``remote``), as
fresh as their publisher makes them. Linking one engine alone gives it an empty view: exactly the
results of an engine that was never linked.

Per detector, what is shared (``docs/sizing.md``, "Partitions"):

- novelty: the peer groups' touches and members (:class:`~detectors.peers.PeerTouches`) and the
  young items (first touched by anyone lately);
- volume, subjects, denied: the peer groups' (and volume's resources') size baselines, pooled;
- drift: the departments' elevated and under-way counts of the day, their active principals, the
  peer findings, and each hour's activity: a partition closing an hour feeds its Page-Hinkley
  monitor the hour's events added up over the view (every partition runs the same monitor on the
  organisation's counts, so each reports a shift it sees, and each damps its own members' findings);
- every detector's severity calibrator (its score histogram and events scored).

Multivariate's half-space trees stay per partition: a model is not a sum.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

from detectors.engine import Engine


def _order(keys: list[Hashable]) -> list[Hashable]:
    """Partitions in a fixed order (sorted when they sort): pooled means add up floats in this order."""
    try:
        return sorted(keys)  # type: ignore[type-var]
    except TypeError:
        return sorted(keys, key=repr)


def link(engines: Mapping[Hashable, Engine], remote: Mapping[Hashable, dict[str, Any]] = {}) -> None:  # noqa: B006
    """Give each engine the view of every other engine's partial plus the ``remote`` partials (keyed by
    partition, of partitions this process does not own). Call again whenever the set of engines or of
    remote partials changes, or an engine's state was restored (cheap: lists of references). ``remote``
    is only read.

    >>> a, b = Engine(), Engine()
    >>> link({0: a, 1: b})
    >>> a.detectors[0].others_.parts[0][0] is b.detectors[0].elevated_  # drift: live, not a copy
    True
    >>> link({0: a})
    >>> a.detectors[0].others_.parts
    ()
    """
    partials = {key: engine.partial() for key, engine in engines.items()}
    partials.update((key, part) for key, part in remote.items() if key not in engines)
    order = _order(list(partials))
    for key, engine in engines.items():
        engine.view([partials[other] for other in order if other != key])
