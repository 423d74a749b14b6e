"""Where the directory and the catalog come from, reloaded without a restart: a file, checked for a
change every ``interval_s``, or a compacted topic, read from its start and then followed.

A reload that fails (a half-written file, a bad record) keeps what was loaded before, says so at
WARNING and counts it (``on_reload("failed")``): the service never stops over its reference data.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from stream.errors import PrivwatchError

log = logging.getLogger(__name__)

T = TypeVar("T")


class FileSource(Generic[T]):
    """``load(path)`` now, and again whenever the file's modification time or size changes.

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "n.txt"
    >>> _ = path.write_text("1")
    >>> src = FileSource(str(path), lambda p: int(open(p).read()), interval_s=0.0)
    >>> _ = path.write_text("22")
    >>> src.current, src.refresh(), src.current
    (1, True, 22)
    """

    def __init__(self, path: str, load: Callable[[str], T], interval_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic,
                 on_reload: Callable[[str], None] | None = None) -> None:
        self.path, self.load, self.interval_s, self.clock = path, load, interval_s, clock
        self.on_reload = on_reload or (lambda outcome: None)
        self._stamp = self._stat()
        self.current: T = load(path)  # at start-up a bad file is an error the operator sees at once
        self._next = clock() + interval_s

    def _stat(self) -> tuple[float, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_mtime, st.st_size

    def refresh(self) -> bool:
        """Reload if due and the file changed; True when a new version was loaded."""
        now = self.clock()
        if now < self._next:
            return False
        self._next = now + self.interval_s
        stamp = self._stat()
        if stamp is None or stamp == self._stamp:
            return False
        try:
            loaded = self.load(self.path)
        except PrivwatchError as exc:
            log.warning("reload failed path=%s error=%s; keeping the previous version", self.path, exc)
            self.on_reload("failed")
            return False
        self._stamp, self.current = stamp, loaded
        log.info("reloaded path=%s", self.path)
        self.on_reload("ok")
        return True


class TopicSource(Generic[T]):
    """A compacted topic read as a table (record key -> latest value; an empty value deletes the key),
    turned into ``build(values)`` whenever it changes. ``values`` are in key order.

    ``consumer`` is a kafka-python consumer without a group (the caller owns it); every partition is
    read from its start.
    """

    def __init__(self, consumer: Any, topic: str, build: Callable[[list[bytes]], T],
                 on_reload: Callable[[str], None] | None = None) -> None:
        from kafka import TopicPartition

        self.consumer, self.topic, self.build = consumer, topic, build
        self.on_reload = on_reload or (lambda outcome: None)
        self.table: dict[bytes, bytes] = {}
        partitions = consumer.partitions_for_topic(topic) or set()
        self.partitions = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(self.partitions)
        consumer.seek_to_beginning(*self.partitions)
        self.current: T = build([])

    def catch_up(self, timeout_s: float = 30.0) -> None:
        """Read to the end offsets as of now (at start-up, before the first event)."""
        ends = self.consumer.end_offsets(self.partitions)
        deadline = time.monotonic() + timeout_s
        while any(self.consumer.position(tp) < ends[tp] for tp in self.partitions):
            if time.monotonic() > deadline:
                log.warning("topic=%s not read to its end in %.0f s; going on with what was read", self.topic,
                            timeout_s)
                break
            self.refresh(timeout_ms=200)
        self._rebuild()

    def refresh(self, timeout_ms: int = 0) -> bool:
        """Apply what has arrived; True when the table changed (and ``current`` was rebuilt)."""
        batch = self.consumer.poll(timeout_ms=timeout_ms)
        changed = False
        for records in batch.values():
            for record in records:
                if record.key is None:
                    continue
                if record.value:
                    self.table[record.key] = record.value
                else:
                    self.table.pop(record.key, None)
                changed = True
        if changed and timeout_ms == 0:
            self._rebuild()
        return changed

    def _rebuild(self) -> None:
        try:
            self.current = self.build([self.table[k] for k in sorted(self.table)])
        except PrivwatchError as exc:
            log.warning("topic=%s could not be applied error=%s; keeping the previous version", self.topic, exc)
            self.on_reload("failed")
            return
        self.on_reload("ok")

    def close(self) -> None:
        self.consumer.close()
