"""Detection configuration: which detectors run, each detector's documented parameters, warm-up and
admin roles, from the service's settings (``docs/detectors.md`` documents every key).

In the config file::

    [privwatch]
    disabled_detectors = ["multivariate"]
    warmup_days = 5
    admin_roles = ["admin", "security-admin"]

    [privwatch.detector_params.volume]
    page_ratio = 20.0

Parameters are checked against the detector's constructor: an unknown detector or parameter, or a
value of the wrong type, is a configuration error at start-up.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from detectors.engine import EngineConfig
from detectors.registry import REGISTRY, parameters


def _coerce(detector: str, name: str, value: Any, default: Any) -> Any:
    """``value`` as the type of the parameter's default (numbers widen to float; lists become tuples)."""
    where = f"detector_params.{detector}.{name}"
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ValueError(f"{where} must be true or false")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where} must be a whole number")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{where} must be a number")
        return float(value)
    if isinstance(default, tuple):
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"{where} must be a list of names")
        return tuple(value)
    raise ValueError(f"{where} cannot be configured")


def check_params(params: Any) -> dict[str, dict[str, Any]]:
    """Validate ``{detector: {parameter: value}}`` (a JSON string from a flag or the environment, or a
    table from the config file) against the detectors' constructors; ValueError names the problem.

    >>> check_params('{"volume": {"page_ratio": 20}}')
    {'volume': {'page_ratio': 20.0}}
    >>> check_params({"volume": {"page_rato": 2}})
    Traceback (most recent call last):
    ...
    ValueError: detector_params.volume: unknown parameter page_rato (known: ...)
    """
    if isinstance(params, str | bytes):
        try:
            params = orjson.loads(params) if params else {}
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"detector_params is not JSON: {exc}") from None
    if not isinstance(params, Mapping):
        raise ValueError("detector_params must map detector names to tables of parameters")
    checked: dict[str, dict[str, Any]] = {}
    for detector, values in params.items():
        if detector not in REGISTRY:
            raise ValueError(f"detector_params: unknown detector {detector} (known: {', '.join(REGISTRY)})")
        if not isinstance(values, Mapping):
            raise ValueError(f"detector_params.{detector} must be a table of parameters")
        known = parameters(detector)
        checked[detector] = {}
        for name, value in values.items():
            if name not in known:
                raise ValueError(f"detector_params.{detector}: unknown parameter {name} "
                                 f"(known: {', '.join(known)})")
            checked[detector][name] = _coerce(detector, name, value, known[name])
    return checked


def check_detectors(names: Sequence[str] | None, field: str) -> list[str] | None:
    if names is None:
        return None
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise ValueError(f"{field}: unknown detector(s) {', '.join(unknown)} (known: {', '.join(REGISTRY)})")
    return list(names)


def engine_config(settings: Any) -> EngineConfig:
    """The engines' configuration from the service's settings."""
    chosen = list(settings.detectors) if settings.detectors is not None else list(REGISTRY)
    chosen = [d for d in chosen if d not in set(settings.disabled_detectors)]
    return EngineConfig(
        cooldown_s=settings.cooldown_s, warmup_events=settings.warmup_events, warmup_days=settings.warmup_days,
        detectors=chosen, detector_params=dict(settings.detector_params), dedup_recent=settings.dedup_recent,
        admin_roles=tuple(settings.admin_roles), admin_departments=tuple(settings.admin_departments))
