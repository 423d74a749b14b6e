"""The operations endpoint: ``/metrics`` (Prometheus), ``/healthz`` (the loop is alive) and
``/readyz`` (partitions assigned, their state restored, and every output acknowledged).

Served by waitress, not ``http.server``: a thread per connection let 300 half-open connections hold
300 threads. waitress reads requests in one asynchronous loop and hands only complete ones to a
fixed pool of :data:`THREADS` workers; connections idle for :data:`IDLE_TIMEOUT_S` are closed, and
beyond :data:`CONNECTION_LIMIT` open ones new connections wait in the listen backlog. Bound to
127.0.0.1 unless ``metrics_host`` says otherwise (the container image sets 0.0.0.0 for scraping).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, make_wsgi_app
from waitress.server import create_server

from stream.errors import PortError

log = logging.getLogger(__name__)

THREADS = 2
CONNECTION_LIMIT = 100
#: seconds a connection may stay idle (or send a request slowly) before it is closed
IDLE_TIMEOUT_S = 10
#: how often waitress looks for idle connections
CLEANUP_INTERVAL_S = 2


class Health:
    """Liveness and readiness as the run loop reports them (plain assignments, read by the server's
    threads). ``blocked`` names why the loop does not consume (outputs unacknowledged), else None."""

    def __init__(self, stall_after_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.stall_after_s = stall_after_s
        self.clock = clock
        self.last_beat = clock()
        self.ready = False
        self.blocked: str | None = None

    def beat(self) -> None:
        self.last_beat = self.clock()

    def alive(self) -> bool:
        return self.clock() - self.last_beat < self.stall_after_s

    def is_ready(self) -> bool:
        return self.ready and self.blocked is None and self.alive()


def _app(registry: CollectorRegistry, health: Health) -> Callable[..., Iterable[bytes]]:
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return metrics(environ, start_response)  # type: ignore[no-any-return]
        if path == "/healthz":
            ok, body = health.alive(), b"ok\n" if health.alive() else b"stalled\n"
        elif path == "/readyz":
            ok = health.is_ready()
            body = b"ready\n" if ok else f"not ready{': ' + health.blocked if health.blocked else ''}\n".encode()
        else:
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"not found\n"]
        status = "200 OK" if ok else "503 Service Unavailable"
        start_response(status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))])
        return [body]

    return app


class Server:
    """The running endpoint: ``server_address`` is (host, port); :meth:`shutdown` stops it."""

    def __init__(self, server: Any) -> None:
        self._server = server
        self.server_address = (server.effective_host, int(server.effective_port))
        self._thread = threading.Thread(target=server.run, name="privwatch-http", daemon=True)
        self._thread.start()

    def shutdown(self) -> None:
        self._server.close()
        self._thread.join(timeout=5)


def serve(host: str, port: int, registry: CollectorRegistry, health: Health) -> Server:
    """Start the endpoint on a daemon thread; ``port`` 0 picks a free port (see ``server_address``)."""
    try:
        server = create_server(_app(registry, health), host=host, port=port, threads=THREADS,
                               connection_limit=CONNECTION_LIMIT, channel_timeout=IDLE_TIMEOUT_S,
                               cleanup_interval=CLEANUP_INTERVAL_S, ident="privwatch", expose_tracebacks=False)
    except OSError as exc:  # in use, not allowed, or no such address
        raise PortError(f"cannot listen on {host}:{port} for metrics ({exc.strerror}); "
                        "choose another with --metrics-port (0: any free port)") from None
    started = Server(server)
    log.info("metrics endpoint host=%s port=%d", host, started.server_address[1])
    return started
