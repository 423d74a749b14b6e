"""Detector names to classes: the default suite and configuration by name."""

from __future__ import annotations

from collections.abc import Sequence
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


def build_detectors(names: Sequence[str] | None, params: dict[str, dict[str, Any]]) -> list[Detector]:
    """Instantiate the named detectors (all registered ones when ``names`` is None)."""
    chosen = list(REGISTRY) if names is None else list(names)
    unknown = [n for n in chosen if n not in REGISTRY]
    if unknown:
        raise ValueError(f"unknown detector(s): {', '.join(unknown)}; known: {', '.join(REGISTRY)}")
    return [REGISTRY[n](**params.get(n, {})) for n in chosen]
