"""A small chart of an alert's ``baseline``: the principal's (and peers') usual values against the value
observed, as bars on one scale. Pure data for the template (``incident.html`` draws the SVG), so
nothing from an alert is ever written into markup unescaped.

Baseline keys starting with ``observed`` are the anomalous value; numeric ones starting with
``usual``, ``peer``, ``resource`` or ``min`` are baselines; anything else (lists, shares of other
things) is not drawn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

WIDTH = 240  # px of the longest bar
BASELINE_PREFIXES = ("usual", "peer", "resource", "min")


@dataclass(frozen=True)
class Chart:
    bars: list[Bar]
    log: bool  # a log scale (values spanning more than a hundredfold)


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    width: float
    observed: bool
    y: int


def chart(baseline: dict[str, Any] | None, row_px: int = 22) -> Chart | None:
    """Bars for the numeric baseline values and the observed value, scaled so the largest fills
    :data:`WIDTH`; a log scale when they span more than a hundredfold (a bulk export is often 10,000x).

    >>> drawn = chart({"usual_records": 30, "observed_records": 480000})
    >>> drawn.log, [(b.label, b.observed, round(b.width)) for b in drawn.bars]
    (True, [('usual records', False, 63), ('observed records', True, 240)])
    """
    items = [(key, float(value)) for key, value in (baseline or {}).items()
             if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
             and value >= 0 and key.startswith((*BASELINE_PREFIXES, "observed"))]
    if not any(key.startswith("observed") for key, _ in items) or len(items) < 2:
        return None
    top = max(value for _, value in items) or 1.0
    low = min((value for _, value in items if value > 0), default=top)
    log = top / low > 100

    def scale(value: float) -> float:
        if value <= 0:
            return 0.0
        return WIDTH * (math.log10(1 + value) / math.log10(1 + top) if log else value / top)

    ordered = sorted(items, key=lambda item: item[0].startswith("observed"))
    return Chart([Bar(key.replace("_", " "), value, max(1.0, scale(value)), key.startswith("observed"), i * row_px)
                  for i, (key, value) in enumerate(ordered)], log)
