"""Log lines that can come once per input record (dead letters), limited to a few per interval.

A producer sending garbage used to make one WARNING per record; now the first :attr:`burst` lines of
each interval are written, and the next line after it says how many were left out (the metrics
count every one).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class RateLimitedLog:
    """At most ``burst`` lines per ``interval_s`` on ``logger`` at ``level``; the rest counted.

    >>> now = [0.0]
    >>> lines = RateLimitedLog(logging.getLogger("doctest"), burst=2, interval_s=60, clock=lambda: now[0])
    >>> [lines.log("x=%d", i) for i in range(5)]
    [True, True, False, False, False]
    >>> now[0] = 61.0
    >>> lines.log("x=%d", 5), lines.suppressed
    (True, 0)
    """

    def __init__(self, logger: logging.Logger, level: int = logging.WARNING, burst: int = 10,
                 interval_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.level = level
        self.burst = burst
        self.interval_s = interval_s
        self.clock = clock
        self.window_start = float("-inf")
        self.written = 0
        self.suppressed = 0

    def log(self, message: str, *args: object) -> bool:
        """Write the line unless this interval's burst is spent; True when it was written."""
        now = self.clock()
        if now - self.window_start >= self.interval_s:
            if self.suppressed:
                self.logger.log(self.level, "%d similar line(s) left out in the last %.0f s (rate-limited)",
                                self.suppressed, now - self.window_start)
            self.window_start, self.written, self.suppressed = now, 0, 0
        if self.written >= self.burst:
            self.suppressed += 1
            return False
        self.written += 1
        self.logger.log(self.level, message, *args)
        return True
