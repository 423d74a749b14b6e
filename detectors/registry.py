"""Detector names to classes: the default suite and configuration by name."""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

from detectors.base import Detector
from detectors.context import Context
from detectors.denied import Denied
from detectors.dormancy import Dormancy
from detectors.drift import Drift
from detectors.multivariate import Multivariate
from detectors.novelty import Novelty
from detectors.privilege import Privilege
from detectors.service_misuse import ServiceMisuse
from detectors.slow_exfiltration import SlowExfiltration
from detectors.subjects import Subjects
from detectors.volume import Volume

REGISTRY: dict[str, type[Detector]] = {
    cls.name: cls
    for cls in (
        Drift,  # first: its shift state is current when the others' findings are damped
        Volume,
        SlowExfiltration,
        Subjects,
        Novelty,
        Context,
        Privilege,
        Dormancy,
        Denied,
        ServiceMisuse,
        Multivariate,
    )
}


def parameters(name: str) -> dict[str, Any]:
    """A registered detector's constructor parameters and their defaults (what configuration may set)."""
    return {p.name: p.default for p in inspect.signature(REGISTRY[name]).parameters.values()}


def build_detectors(names: Sequence[str] | None, params: Mapping[str, Mapping[str, Any]],
                    shared: Mapping[str, Any] | None = None) -> list[Detector]:
    """Instantiate the named detectors (all registered ones when ``names`` is None) with their
    ``params``; ``shared`` parameters (the admin roles) go to every detector that takes them, unless its
    own ``params`` set them."""
    chosen = list(REGISTRY) if names is None else list(names)
    unknown = [n for n in chosen if n not in REGISTRY]
    if unknown:
        raise ValueError(f"unknown detector(s): {', '.join(unknown)}; known: {', '.join(REGISTRY)}")
    built = []
    for name in chosen:
        accepted = parameters(name)
        kwargs = {k: v for k, v in (shared or {}).items() if k in accepted}
        kwargs.update(params.get(name, {}))
        built.append(REGISTRY[name](**kwargs))
    return built
