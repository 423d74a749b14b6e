"""Detector names to classes: the default suite and configuration by name."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from detectors.base import Detector
from detectors.volume import Volume

REGISTRY: dict[str, type[Detector]] = {
    Volume.name: Volume,
}


def build_detectors(names: Sequence[str] | None, params: dict[str, dict[str, Any]]) -> list[Detector]:
    """Instantiate the named detectors (all registered ones when ``names`` is None)."""
    chosen = list(REGISTRY) if names is None else list(names)
    unknown = [n for n in chosen if n not in REGISTRY]
    if unknown:
        raise ValueError(f"unknown detector(s): {', '.join(unknown)}; known: {', '.join(REGISTRY)}")
    return [REGISTRY[n](**params.get(n, {})) for n in chosen]
