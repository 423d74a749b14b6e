"""The service's per-event loop: each released item through its partition's engine.

Compiled with the detectors (:mod:`detectors.native`), so the call to
:meth:`~detectors.engine.Engine.process` is a direct C call and the loop costs no interpreter
dispatch per event. What is rare (dead letters, alerts, lag samples) calls back into the service.
"""

from __future__ import annotations

import logging
from typing import Any, Final, Protocol

from detectors.engine import Engine
from detectors.events import Event
from stream.contract.decode import Item
from stream.errors import BadRecord

log = logging.getLogger("stream.service.service")  # the loop's lines keep the logger name they had in service.py

#: The event-lag and merge-hold histograms see one event in this many (their quantiles, not their
#: counts, are what is read; observing every event cost about 1 us, a few percent of the whole
#: per-event budget).
LAG_SAMPLE_EVERY: Final = 16
#: Handled items are let go this many at a time (see :func:`dispatch`).
FREE_EVERY: Final = 32


class Handler(Protocol):
    """What :func:`dispatch` needs of the service (:class:`~stream.service.service.Service`)."""

    def engine(self, partition: int) -> Engine: ...

    def dead_letter(self, item: Item, bad: BadRecord) -> None: ...

    def publish(self, alert: dict[str, Any], partition: int = -1) -> None: ...

    def observe_lag(self, seconds: float, held_s: float) -> None: ...


def dispatch(items: list[Item], handler: Handler, now: float, handled_to: dict[str, dict[int, int]],
             processed: dict[str, int], newest_ts: float) -> float:
    """Handle ``items`` in order: events through their partition's engine and their alerts published,
    bad records and records the engine fails on dead-lettered. Notes in ``handled_to`` the last offset
    handled per topic and partition, counts processed events by kind in ``processed``, and returns
    the newest event time seen (``newest_ts`` if none is newer).

    Empties ``items`` as it goes, letting handled items go :data:`FREE_EVERY` at a time: their
    records and events are freed while still in the CPU's caches, rather than all together once the
    batch is done, when the rest of it has pushed them out.

    >>> from types import SimpleNamespace as NS
    >>> class Engines:
    ...     def engine(self, partition): return NS(process=lambda event, now: [{"n": event.ts}])
    ...     def dead_letter(self, item, bad): print("dead letter", item.offset, bad.reason)
    ...     def publish(self, alert, partition=-1): print("alert", alert, partition)
    ...     def observe_lag(self, seconds, held_s): print("lag", seconds, "held", held_s)
    >>> event = NS(ts=5.0, kind="access")
    >>> items = [Item(5.0, "a", 0, 7, None, event, 8.5), Item(-1.0, "a", 0, 8, None, BadRecord("schema"), 9.0)]
    >>> offsets, kinds = {"a": {}}, {"access": 0, "permission": 0}
    >>> dispatch(items, Engines(), 9.0, offsets, kinds, 1.0)
    lag 4.0 held 0.5
    alert {'n': 5.0} 0
    dead letter 8 schema
    5.0
    >>> offsets, kinds, items
    ({'a': {0: 8}}, {'access': 1, 'permission': 0}, [])

    (From the source: compiled, the engine must be a :class:`~detectors.engine.Engine`.)
    """
    engine_of = -1  # the merger releases a partition's items together: one engine lookup per run
    engine: Engine | None = None
    items.reverse()  # popped from the end, in release order
    handled: list[Item] = []
    i = -1
    while items:
        item = items.pop()
        i += 1
        handled.append(item)
        if len(handled) >= FREE_EVERY:
            handled = []
        payload = item.payload
        handled_to[item.topic][item.partition] = item.offset  # offset order within a topic-partition
        if isinstance(payload, BadRecord):
            handler.dead_letter(item, payload)
            continue
        event: Event = payload
        if item.partition != engine_of or engine is None:
            engine_of, engine = item.partition, handler.engine(item.partition)
        try:
            alerts = engine.process(event, now)
        except Exception as exc:  # a detector bug must not kill the service or lose the record
            log.exception("engine failed on a record; dead-lettering it")
            handler.dead_letter(item, BadRecord("internal", f"{type(exc).__name__} in engine"))
            continue
        processed[event.kind] += 1
        if not i % LAG_SAMPLE_EVERY:
            handler.observe_lag(max(0.0, now - event.ts), now - item.arrived)
        if event.ts > newest_ts:
            newest_ts = event.ts
        for alert in alerts:
            handler.publish(alert, item.partition)
    return newest_ts
