"""Which resources one principal exports: the last few active days against the time before them.

Slow exfiltration siphons one dataset, so the extra exports concentrate on one resource far more
than the principal's exports used to; a busy stretch of ordinary work keeps the usual mix. The
:class:`ExportMix` keeps, for at most ``cap`` resources, the exports on each of the last ``recent``
active days (today included) and a slowly decaying count of exports before them.
"""

from __future__ import annotations

from array import array
from typing import Final


class ExportMix:
    """Per-resource export counts of one principal: recent active days and before.

    >>> mix = ExportMix()
    >>> for day in range(10):
    ...     mix.add("t.a"); mix.add("t.b"); mix.close_day()
    >>> for n in range(4):
    ...     mix.add("t.a")
    >>> share, before, top, n_top, n_all = mix.concentration()
    >>> top, round(share, 2), round(before, 2), (n_top, n_all)
    ('t.a', 0.7, 0.5, (7, 10))
    """

    __slots__ = ("resources", "before", "counts")

    #: active days counted as recent (today and the days before it)
    RECENT: Final = 4
    #: resources tracked per principal; the least exported one makes room for a new one
    CAP: Final = 6
    #: per closed active day, what the count before the recent days keeps (forgets over months)
    DECAY: Final = 0.98

    def __init__(self) -> None:
        self.resources: list[str] = []
        self.before = array("f")
        self.counts = array("H")  # RECENT per resource: oldest day first, today last

    def _total(self, i: int) -> float:
        r = self.RECENT
        return self.before[i] + sum(self.counts[i * r:(i + 1) * r])

    def add(self, resource: str) -> None:
        """Count one export of ``resource`` today."""
        r = self.RECENT
        try:
            i = self.resources.index(resource)
        except ValueError:
            if len(self.resources) >= self.CAP:
                i = min(range(len(self.resources)), key=self._total)
                self.resources[i], self.before[i] = resource, 0.0
                self.counts[i * r:(i + 1) * r] = array("H", bytes(2 * r))
            else:
                i = len(self.resources)
                self.resources.append(resource)
                self.before.append(0.0)
                self.counts.extend(array("H", bytes(2 * r)))
        j = (i + 1) * r - 1
        if self.counts[j] < 0xFFFF:
            self.counts[j] += 1

    def today(self, resource: str) -> int:
        """Exports of ``resource`` today so far."""
        try:
            i = self.resources.index(resource)
        except ValueError:
            return 0
        return self.counts[(i + 1) * self.RECENT - 1]

    def only_today(self) -> str:
        """The one resource exported today, or "" when none or several were."""
        r = self.RECENT
        exported = [res for i, res in enumerate(self.resources) if self.counts[(i + 1) * r - 1]]
        return exported[0] if len(exported) == 1 else ""

    def close_day(self) -> None:
        """Today becomes the newest closed day; the oldest recent day moves into ``before``."""
        r = self.RECENT
        for i in range(len(self.resources)):
            self.before[i] = self.before[i] * self.DECAY + self.counts[i * r]
            self.counts[i * r:(i + 1) * r - 1] = self.counts[i * r + 1:(i + 1) * r]
            self.counts[(i + 1) * r - 1] = 0

    def concentration(self, extra: str = "", new_day: bool = False) -> tuple[float, float, str, int, int]:
        """(share of the recent exports on the top resource, that resource's share before, the resource,
        its recent exports, all recent exports), counting one more export of ``extra`` today; with
        ``new_day`` as if the open day had been closed first."""
        r = self.RECENT
        recent: dict[str, int] = {}
        before: dict[str, float] = {}
        for i, resource in enumerate(self.resources):
            row = self.counts[i * r:(i + 1) * r]
            recent[resource] = sum(row[1:]) if new_day else sum(row)
            before[resource] = self.before[i] + (row[0] if new_day else 0)
        if extra:
            recent[extra] = recent.get(extra, 0) + 1
        n_all = sum(recent.values())
        if n_all == 0:
            return 0.0, 0.0, "", 0, 0
        top = max(recent, key=recent.__getitem__)
        total_before = sum(before.values())
        share_before = before.get(top, 0.0) / total_before if total_before > 0 else 0.0
        return recent[top] / n_all, share_before, top, recent[top], n_all

    def __getstate__(self) -> tuple:
        # the numbers as bytes: an array pickles as a call of array's reconstructor (2 us to unpickle)
        return (self.resources, self.before.tobytes(), self.counts.tobytes())

    def __setstate__(self, state: tuple) -> None:
        self.resources, before, counts = state
        self.before, self.counts = array("f", before), array("H", counts)  # bytes, or arrays (before)


#: the mix of every principal that has not exported yet, shared (a principal's own one is about 260
#: bytes): never changed, since closing a day of an empty mix changes nothing; a principal's first
#: export gives it its own
NO_EXPORTS: Final = ExportMix()
