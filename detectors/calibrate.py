"""Raw detector scores to a 0–100 severity that means the same for every detector.

Severity is a tail probability against the detector's own score history: ``p`` is the share of
all events the detector has scored whose score was at least as high. ``severity = 20·(-log10 p)``,
so one event in a thousand is 60, one in a hundred thousand is 100. Scores are kept in a fixed
histogram, so memory is constant.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np

LEVELS: Final = (("critical", 80.0), ("high", 65.0), ("medium", 50.0), ("low", 30.0), ("info", 0.0))
PAGING_LEVELS: Final = frozenset({"medium", "high", "critical"})
#: the lowest severity that pages (medium)
PAGING_FLOOR: Final = 50.0


def level_for(severity: float) -> str:
    """Map a severity to a level; medium and above page someone.

    >>> level_for(90), level_for(55), level_for(10)
    ('critical', 'medium', 'info')
    """
    for name, floor in LEVELS:
        if severity >= floor:
            return name
    return "info"


class Calibrator:
    """Tail-probability calibration over a log-spaced score histogram.

    ``prior_events`` pretends the detector has already seen that many quiet events, so that the
    first anomalies of a fresh deployment are not all "one in a hundred".

    >>> c = Calibrator(prior_events=10_000)
    >>> for _ in range(1000):
    ...     c.observe(0.5)
    >>> round(c.severity(0.4)) < round(c.severity(10.0))
    True
    """

    def __init__(self, lo: float = 0.01, hi: float = 1e4, bins: int = 256, prior_events: int = 10_000):
        self.lo = lo
        self.hi = hi
        self.bins = bins
        self.prior_events = prior_events
        self._log_lo = math.log(lo)
        self._scale = bins / (math.log(hi) - self._log_lo)
        self.counts_ = np.zeros(bins + 1, dtype=np.int64)
        self.n_ = 0

    def _bin(self, score: float) -> int:
        if score <= self.lo:
            return 0
        return min(self.bins, int((math.log(score) - self._log_lo) * self._scale) + 1)

    def observe(self, score: float) -> None:
        """Count one scored event (score 0 for events with nothing unusual)."""
        self.n_ += 1
        if score > self.lo:
            self.counts_[self._bin(score)] += 1

    def tail_probability(self, score: float) -> float:
        at_or_above = int(self.counts_[self._bin(score):].sum())
        return max(at_or_above, 1) / (self.n_ + self.prior_events)

    def severity(self, score: float) -> float:
        return float(min(100.0, 20.0 * -math.log10(self.tail_probability(score))))
