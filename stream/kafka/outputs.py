"""The service's outputs (alerts and dead letters): every send is kept until the broker acknowledged it.

kafka-python hands back a future per send and logs, at most, a warning when one fails; nothing made
the loop look at them, so refused alerts were lost while the offsets that produced them were
committed. :class:`Outputs` keeps each record with its future; :meth:`Outputs.flush` (the first step
of :meth:`stream.service.checkpoint.Checkpoint.commit`) waits for them and raises
:class:`OutputsUnsent` when any was refused, so nothing is committed past it. Refused records are
re-sent, oldest first, with capped exponential backoff until the broker takes them; records sent
meanwhile wait behind them (order kept, and no send blocks on a topic that is gone). A dead letter
refused as too large is cut shorter (:meth:`stream.kafka.deadletter.DeadLetter.fit`) and re-sent at once.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kafka.errors import KafkaError, MessageSizeTooLargeError

from stream.backoff import Backoff
from stream.errors import OutputsUnsent
from stream.kafka.clients import DELIVERY_TIMEOUT_S

log = logging.getLogger(__name__)

#: rounds of "flush, then re-send what was cut shorter" in one flush (each halves a dead letter)
MAX_SHRINK_ROUNDS = 6


@dataclass(slots=True)
class Output:
    """One record to produce; ``shrink`` (dead letters only) returns a shorter version of it, or None."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] | None = None
    shrink: Callable[[Output], Output | None] | None = None


class Outputs:
    """Sends records and accounts for every one: acknowledged (``acked`` per topic), in flight, or refused.

    ``on_ack(topic, n)`` and ``on_failure(topic)`` feed the metrics (records that reached a topic,
    refused attempts). ``clock`` is monotonic seconds (tests inject one).
    """

    def __init__(self, producer: Any, on_ack: Callable[[str, int], None] = lambda topic, n: None,
                 on_failure: Callable[[str], None] = lambda topic: None, clock: Callable[[], float] = time.monotonic,
                 backoff: Backoff | None = None) -> None:
        self.producer = producer
        self.on_ack = on_ack
        self.on_failure = on_failure
        self.clock = clock
        self.backoff = backoff or Backoff(initial_s=0.5, max_s=30.0)
        self.inflight: list[tuple[Output, Any]] = []
        #: refused (or never sent) records, oldest first, and those held behind them
        self.failed: list[Output] = []
        self.acked: dict[str, int] = {}
        self.retry_at = 0.0
        self.last_error = ""
        self._retrying = False

    @property
    def stalled(self) -> bool:
        """True while some record is not acknowledged after its send failed."""
        return bool(self.failed)

    def send(self, output: Output) -> None:
        """Produce ``output`` (or hold it behind records waiting for a retry)."""
        if self.failed:
            self.failed.append(output)
        else:
            self._send(output)

    def _send(self, output: Output) -> bool:
        try:
            future = self.producer.send(output.topic, key=output.key, value=output.value, headers=output.headers)
        except KafkaError as exc:  # no metadata in max_block_ms (a deleted topic), too large for the producer
            self._refused(output, exc)
            return False
        self.inflight.append((output, future))
        return True

    def flush(self, timeout: float | None = None) -> None:
        """Wait for every send; raise :class:`OutputsUnsent` when one is refused or still unacknowledged
        (at once when one is refused already: nothing after it can be committed, whatever the rest do)."""
        if self.failed:
            self._collect()
            raise OutputsUnsent(f"{len(self.failed) + len(self.inflight)} output record(s) not acknowledged "
                                f"(last error: {self.last_error})")
        for _ in range(MAX_SHRINK_ROUNDS):  # always once: the producer's other records (state) are flushed too
            with contextlib.suppress(KafkaError):  # a flush timeout: the futures tell which records are still out
                self.producer.flush(timeout)
            if not self._collect():
                break
        if self.failed or self.inflight:
            raise OutputsUnsent(f"{len(self.failed) + len(self.inflight)} output record(s) not acknowledged "
                                f"(last error: {self.last_error or 'timeout'})")

    def _collect(self) -> bool:
        """Sort the futures that are done; returns True when a shorter version of a record was sent."""
        pending, resent = [], False
        for output, future in self.inflight:
            if not future.is_done:
                pending.append((output, future))
            elif future.succeeded():
                self.acked[output.topic] = self.acked.get(output.topic, 0) + 1
                self.on_ack(output.topic, 1)
            else:
                shorter = self._shorter(output, future.exception)
                if shorter is not None and not self.failed:
                    self.on_failure(output.topic)
                    resent = self._send(shorter) or resent
                else:
                    self._refused(shorter or output, future.exception)
        self.inflight = pending
        return resent

    def _shorter(self, output: Output, exc: BaseException | None) -> Output | None:
        if isinstance(exc, MessageSizeTooLargeError) and output.shrink is not None:
            return output.shrink(output)
        return None

    def _refused(self, output: Output, exc: BaseException | None) -> None:
        if not self.failed and not self._retrying:
            self.retry_at = self.clock() + self.backoff.next_delay()
            log.error("output refused topic=%s error=%s; consuming stops until it is acknowledged", output.topic,
                      type(exc).__name__)
        self.last_error = type(exc).__name__
        self.on_failure(output.topic)
        self.failed.append(output)

    def retry(self) -> bool:
        """Re-send the refused records once their backoff is over; True when nothing is left unacknowledged."""
        if not self.failed:
            return not self.inflight
        if self.clock() < self.retry_at:
            return False
        waiting, self.failed = self.failed, []
        self._retrying = True
        try:
            for i, output in enumerate(waiting):
                if not self._send(output):
                    self.failed.extend(waiting[i + 1:])  # the rest stays behind it, unsent
                    break
            self.flush(timeout=DELIVERY_TIMEOUT_S + 5)  # every re-sent record acknowledged or refused by then
        except OutputsUnsent:
            delay = self.backoff.next_delay()
            self.retry_at = self.clock() + delay
            log.warning("outputs still refused records=%d error=%s; next try in %.1f s", len(self.failed),
                        self.last_error, delay)
            return False
        finally:
            self._retrying = False
        self.backoff.reset()
        log.info("outputs acknowledged again; consuming resumes")
        return True
