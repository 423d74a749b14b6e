"""A moderate exporter's steady extra: the share of exports among a principal's accesses over its
last few active days, tested against its share over all the days before them.

One or two extra exports a day on top of one to three usual ones stay inside each day's noise, but
over a week they move the export share well beyond what the principal's history allows. The test is
the two-proportion z-test of the recent window's share against the history's (pooled variance), so
it is calibrated whatever the history's length: a share estimated from two weeks is uncertain, and
the test says so, where a daily surplus against an exponentially weighted share piles up the share's
own estimation error day after day. Normalising by all the principal's accesses makes a busy day or
a quarter-end surge, in which everything grows together, unremarkable.

:class:`ExportWindow` keeps the exports and other accesses of the last ``days - 1`` closed active days
(today is added when scoring), and the decayed sums of the days before them.
"""

from __future__ import annotations

import math
from array import array
from typing import Final

from detectors.base import Finding
from detectors.events import Event
from detectors.export_mix import ExportMix

#: per closed active day, what the history keeps of itself (forgets over months)
DECAY: Final = 0.99


def anscombe_z(count: float, expected: float) -> float:
    """Variance-stabilised Poisson deviation of ``count`` from ``expected``.

    >>> round(anscombe_z(4, 1.0), 2), round(anscombe_z(1, 1.0), 2)
    (1.84, 0.0)
    """
    return 2.0 * (math.sqrt(count + 0.375) - math.sqrt(expected + 0.375))


class ExportWindow:
    """Recent active days against the history before them, for one principal.

    >>> w = ExportWindow(days=5)
    >>> for _ in range(12):
    ...     w.close_day(exports=1, others=15)
    >>> for _ in range(4):
    ...     w.close_day(exports=4, others=15)  # three extra exports a day
    >>> z, extra = w.test(exports=4, others=15)
    >>> round(z, 1), round(extra, 1)
    (3.7, 14.1)
    """

    __slots__ = ("days", "recent", "hist_exports", "hist_accesses", "hist_days", "held")

    def __init__(self, days: int = 5) -> None:
        self.days = days
        self.recent = array("i")  # exports, others of each recent closed day, oldest first
        self.hist_exports = 0.0
        self.hist_accesses = 0.0
        self.hist_days = 0
        self.held = False  # the window paged: its days stay out of the history

    def close_day(self, exports: int, others: int) -> None:
        """A closed active day joins the window; the oldest one moves into the history."""
        self.recent.extend((exports, others))
        if len(self.recent) > 2 * (self.days - 1):
            old_exports, old_others = self.recent[0], self.recent[1]
            del self.recent[:2]
            if not self.held:
                self.hist_exports = self.hist_exports * DECAY + old_exports
                self.hist_accesses = self.hist_accesses * DECAY + old_exports + old_others
                self.hist_days += 1

    def test(self, exports: int, others: int) -> tuple[float, float]:
        """(z, extra exports over the history's share) of the window with today's counts so far."""
        x = exports + sum(self.recent[0::2])
        n = x + others + sum(self.recent[1::2])
        h_n = self.hist_accesses
        if n <= 0 or h_n <= 0 or self.hist_exports <= 0:
            return 0.0, 0.0
        p0 = self.hist_exports / h_n
        pooled = (x + self.hist_exports) / (n + h_n)
        spread = math.sqrt(max(pooled * (1.0 - pooled), 1e-9) * (1.0 / n + 1.0 / h_n))
        return (x / n - p0) / spread, x - n * p0

    def window_days(self) -> int:
        return len(self.recent) // 2 + 1

    def __getstate__(self) -> tuple:
        # the counts as bytes: an array pickles as a call of array's reconstructor (2 us to unpickle)
        return (self.days, self.recent.tobytes(), self.hist_exports, self.hist_accesses, self.hist_days, self.held)

    def __setstate__(self, state: tuple) -> None:
        self.days, recent, self.hist_exports, self.hist_accesses, self.hist_days, self.held = state
        self.recent = array("i", recent)  # bytes, or an array (slow_exfiltration's state version 2)


def steady_extra_finding(detector: str, event: Event, w: ExportWindow, z: float, extra: float,
                         mix: tuple[float, float, str, int, int], evidence: list[str], threshold: float,
                         max_severity: float) -> Finding:
    """The finding of a steady extra: ``mix`` is :meth:`ExportMix.concentration`'s answer."""
    recent, before, top, n_top, n_all = mix
    share = w.hist_exports / max(w.hist_accesses, 1.0)
    return Finding(
        detector=detector,
        event=event,
        score=z,
        title=f"Steady extra exports over {w.window_days()} active days",
        reasons=[
            f"{extra:.0f} more exports over the last {w.window_days()} active days than this principal's export "
            f"share before them ({share:.1%} of its accesses over {w.hist_days} days) predicts (two-proportion "
            f"z={z:.1f}, threshold {threshold})",
            f"{n_top} of the {n_all} exports in the last {ExportMix.RECENT} active days were of {top} ({recent:.0%}; "
            f"{before:.0%} of this principal's exports before)",
            # below the paging floor (50): a steady extra alone pages as often on ordinary habits as on siphoning
            *([] if max_severity >= 50.0 else ["reported, not paged: a steady extra alone is as common in ordinary "
                                               "export habits as in siphoning (window_severity)"]),
        ],
        evidence_event_ids=evidence,
        baseline={"usual_export_share": round(share, 4), "history_days": w.hist_days, "extra_exports": round(extra, 1),
                  "top_resource_share": round(recent, 3), "top_resource_share_before": round(before, 3)},
        resource_ids=[top],
        max_severity=max_severity,
    )
