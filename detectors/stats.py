"""Small, fixed-size running statistics kept per principal (a few floats each)."""

from __future__ import annotations

import math


class EWStats:
    """Exponentially weighted mean and variance (West's incremental form).

    >>> s = EWStats(alpha=0.5)
    >>> for x in (1.0, 1.0, 1.0):
    ...     s.update(x)
    >>> s.mean, s.n
    (1.0, 3)
    """

    __slots__ = ("alpha", "mean", "var", "n")

    def __init__(self, alpha: float = 0.05) -> None:
        self.alpha = alpha
        self.mean = 0.0
        self.var = 0.0
        self.n = 0

    def update(self, x: float) -> None:
        self.n += 1
        if self.n == 1:
            self.mean = x
            return
        diff = x - self.mean
        incr = self.alpha * diff
        self.mean += incr
        self.var = (1.0 - self.alpha) * (self.var + diff * incr)

    @property
    def std(self) -> float:
        return math.sqrt(self.var)

    def z(self, x: float, floor: float = 0.5) -> float:
        """Standard score of ``x`` with a floor on the deviation (tiny variances are not evidence)."""
        return (x - self.mean) / max(self.std, floor)

    def __getstate__(self) -> tuple:
        return (self.alpha, self.mean, self.var, self.n)

    def __setstate__(self, state: tuple) -> None:
        self.alpha, self.mean, self.var, self.n = state
