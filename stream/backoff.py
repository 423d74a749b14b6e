"""Capped exponential backoff for retries: Alertmanager posts, refused Kafka sends."""

from __future__ import annotations


class Backoff:
    """Delays of ``initial_s * factor**n``, capped at ``max_s``; :meth:`reset` after a success.

    No jitter: each instance retries one thing at a time (a batch of pages, the oldest refused
    send), and a deterministic schedule keeps the tests exact.

    >>> b = Backoff(initial_s=0.5, max_s=30.0)
    >>> [b.next_delay() for _ in range(9)]
    [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    >>> b.reset(); b.next_delay()
    0.5
    """

    def __init__(self, initial_s: float = 0.5, max_s: float = 30.0, factor: float = 2.0) -> None:
        if initial_s <= 0 or max_s < initial_s or factor < 1:
            raise ValueError("need 0 < initial_s <= max_s and factor >= 1")
        self.initial_s = initial_s
        self.max_s = max_s
        self.factor = factor
        self.failures = 0

    def next_delay(self) -> float:
        """The delay before the next attempt; each call counts one more failure."""
        delay = min(self.max_s, self.initial_s * self.factor**self.failures)
        if delay < self.max_s:  # stop growing the exponent once capped (no float overflow)
            self.failures += 1
        return delay

    def reset(self) -> None:
        self.failures = 0
