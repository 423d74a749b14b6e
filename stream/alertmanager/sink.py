"""A non-blocking Alertmanager API v2 sink: the run loop calls :meth:`AlertmanagerSink.submit` and
moves on; a daemon thread batches, posts, retries with backoff, re-sends active alerts and resolves
them when they are over.

Alertmanager treats an alert as resolved once its ``endsAt`` passes (or, when a client sends none,
``resolve_timeout`` after the last post), so active alerts are re-sent every ``resend_s`` with
``endsAt = now + 3 * resend_s``: two lost re-sends are tolerated, and if privwatch dies its alerts
resolve by themselves within three intervals (the scheme Prometheus itself uses).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from stream.alertmanager.active import ActiveAlerts, Pending
from stream.alertmanager.backoff import Backoff
from stream.alertmanager.client import AlertmanagerError, post_alerts
from stream.alertmanager.mapping import check_evidence_url, to_alertmanager

log = logging.getLogger(__name__)

DEFAULT_RUNBOOK_BASE_URL = "https://github.com/privwatch/privwatch/blob/main/docs/runbooks"
RESEND_ENDS_AT_FACTOR = 3  # endsAt = now + 3 x resend_s: survives two lost re-sends
MAX_IDLE_WAIT_S = 1.0  # the sender re-checks expiry at least this often


class AlertmanagerSink:
    """Send alerts (or correlated incidents) to Alertmanager without ever blocking the caller.

    Parameters
    ----------
    url
        Alertmanager base URL, e.g. ``http://alertmanager:9093``.
    metrics
        A :class:`stream.ops.metrics.Metrics` (``am_sends``, ``am_queue``), or None.
    resend_s
        Re-send cadence for active alerts; keep it well below Alertmanager's ``resolve_timeout``.
    queue_size
        Bound of the hand-over queue; when full the oldest item is dropped and counted ``dropped``.
    active_for_s
        Event-time seconds after an alert's last update at which it is resolved.
    clock
        Wall clock for ``endsAt`` and the re-send schedule (tests inject one).
    autostart
        Start the sender thread now (tests of the queue alone pass False).
    """

    def __init__(
        self,
        url: str,
        metrics: Any = None,
        resend_s: float = 60.0,
        queue_size: int = 10_000,
        service: str = "privwatch",
        runbook_base_url: str = DEFAULT_RUNBOOK_BASE_URL,
        evidence_url: str | None = None,
        clock: Callable[[], float] = time.time,
        active_for_s: float = 4 * 3600.0,
        max_active: int = 10_000,
        batch_size: int = 500,
        timeout_s: float = 5.0,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        autostart: bool = True,
    ) -> None:
        if resend_s <= 0 or queue_size < 1 or max_active < 1 or batch_size < 1:
            raise ValueError("resend_s, queue_size, max_active and batch_size must be positive")
        check_evidence_url(evidence_url)
        self.url = url
        self.metrics = metrics
        self.resend_s = resend_s
        self.queue_size = queue_size
        self.service = service
        self.runbook_base_url = runbook_base_url
        self.evidence_url = evidence_url
        self.clock = clock
        self.active_for_s = active_for_s
        self.max_active = max_active
        self.batch_size = batch_size
        self.timeout_s = timeout_s
        self.counts = {"ok": 0, "failed": 0, "dropped": 0}
        self._count_lock = threading.Lock()
        # Shared with the caller, guarded by _wake's lock.
        self._wake = threading.Condition(threading.Lock())
        self._queue: deque[tuple[str, Any]] = deque()
        self._unsent = 0
        self._working = False
        self._closed = False
        self._watermark = float("-inf")
        self._watermark_moved = False
        # Sender thread only.
        self._state = ActiveAlerts(service, active_for_s, max_active, max_active + queue_size,
                                   on_drop=lambda n: self._count("dropped", n))
        self._backoff = Backoff(backoff_initial_s, backoff_max_s)
        self._retry_at = float("-inf")
        self._next_resend = clock() + resend_s
        self._thread = threading.Thread(target=self._run, name="alertmanager-sink", daemon=True)
        for outcome in self.counts:
            self._count(outcome, 0)
        if autostart:
            self.start()

    # -- caller side: never blocks on Alertmanager ------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def submit(self, alert: dict[str, Any]) -> None:
        """Queue an alert or incident (a new one, or an update of one already sent)."""
        self._put(("alert", alert))

    def resolve(self, alert_id: str) -> None:
        """Resolve an active alert now, by its alert id or incident id."""
        self._put(("resolve", alert_id))

    def advance(self, event_ts: float) -> None:
        """Tell the sink how far event time has got, so quiet alerts still resolve on time."""
        with self._wake:
            if event_ts > self._watermark:
                self._watermark = event_ts
                self._watermark_moved = True
                self._wake.notify()

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until everything submitted has been delivered; False if ``timeout_s`` passed first."""
        deadline = time.monotonic() + timeout_s
        with self._wake:
            self._wake.notify_all()
            while self._queue or self._unsent or self._working:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._thread.is_alive():
                    return False
                self._wake.wait(remaining)
            return True

    def close(self, timeout_s: float = 5.0) -> None:
        """Flush for up to ``timeout_s``, stop the sender; what is still unsent counts as dropped.

        Active alerts are not resolved: if privwatch is restarting they stay up, and otherwise
        Alertmanager resolves them when their ``endsAt`` passes.
        """
        if self._thread.is_alive():
            self.flush(timeout_s)
        with self._wake:
            self._closed = True
            self._wake.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        with self._wake:
            lost = len(self._queue) + len(self._state.pending)
            self._queue.clear()
            if not self._thread.is_alive():  # else it is stuck in a post; leave its state alone
                self._state.pending.clear()
            self._unsent = 0
        if lost:
            log.warning("alertmanager sink closed with unsent alerts dropped=%d", lost)
            self._count("dropped", lost)
        self._set_gauge()

    def __enter__(self) -> AlertmanagerSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def queued(self) -> int:
        """Items waiting in the hand-over queue plus alerts the sender has yet to deliver."""
        with self._wake:
            return len(self._queue) + self._unsent

    @property
    def active_count(self) -> int:
        return len(self._state.active)

    def _put(self, item: tuple[str, Any]) -> None:
        dropped = 0
        with self._wake:
            if self._closed:
                dropped = 1
            else:
                if len(self._queue) >= self.queue_size:
                    self._queue.popleft()
                    dropped = 1
                self._queue.append(item)
                self._wake.notify()
        if dropped:
            self._count("dropped")
        self._set_gauge()

    # -- sender thread ------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._wake:
                while not (self._closed or self._queue or self._due()):
                    self._wake.wait(self._wait_s())
                if self._closed:
                    return
                items = list(self._queue)
                self._queue.clear()
                self._watermark_moved = False
                self._working = True
                watermark = self._watermark
            try:
                self._round(items, watermark)
            except Exception:  # never let one bad alert kill the sender
                log.exception("alertmanager sink round failed")
            with self._wake:
                self._working = False
                self._unsent = len(self._state.pending)
                self._wake.notify_all()
            self._set_gauge()

    def _due(self) -> bool:
        now = self.clock()
        return (self._watermark_moved or now >= self._next_resend
                or bool(self._state.pending and now >= self._retry_at))

    def _wait_s(self) -> float:
        now = self.clock()
        wake_at = self._next_resend
        if self._state.pending:
            wake_at = min(wake_at, self._retry_at)
        return max(0.0, min(MAX_IDLE_WAIT_S, wake_at - now))

    def _round(self, items: list[tuple[str, Any]], watermark: float) -> None:
        now = self.clock()
        for kind, payload in items:
            try:
                if kind == "alert":
                    watermark = max(watermark, self._state.apply(payload, now))
                else:
                    self._state.resolve(str(payload), now)
            except (KeyError, TypeError, ValueError) as exc:  # not a contract alert: say so, go on
                log.error("alertmanager sink dropped a malformed alert: %s: %s", type(exc).__name__, exc)
                self._count("dropped")
        self._state.expire(watermark, now)
        if now >= self._next_resend:
            self._state.resend_all()
            self._next_resend = now + self.resend_s
        if self._state.pending and now >= self._retry_at:
            self._send(now)

    def _payload(self, send: Pending, now: float) -> dict[str, Any]:
        ends_at = send.resolved_at
        if ends_at is None:
            ends_at = now + RESEND_ENDS_AT_FACTOR * self.resend_s
        return to_alertmanager(send.doc, service=self.service, runbook_base_url=self.runbook_base_url,
                               evidence_url=self.evidence_url, ends_at=ends_at)

    def _send(self, now: float) -> None:
        pending = list(self._state.pending.items())
        for start in range(0, len(pending), self.batch_size):
            chunk = pending[start:start + self.batch_size]
            try:
                post_alerts(self.url, [self._payload(send, now) for _, send in chunk], self.timeout_s)
            except AlertmanagerError as exc:
                self._count("failed")
                if exc.retryable:
                    delay = self._backoff.next_delay()
                    self._retry_at = self.clock() + delay
                    log.warning("alertmanager post failed; retrying in %.1fs: %s", delay, exc)
                    return
                log.error("alertmanager rejected %d alerts, not retrying: %s", len(chunk), exc)
                self._count("dropped", len(chunk))
            else:
                self._count("ok")
                self._backoff.reset()
            self._state.delivered(chunk)

    def _count(self, outcome: str, n: int = 1) -> None:
        with self._count_lock:
            self.counts[outcome] += n
        if self.metrics is not None:
            self.metrics.am_sends.labels(outcome).inc(n)

    def _set_gauge(self) -> None:
        if self.metrics is not None:
            self.metrics.am_queue.set(self.queued)
