"""The operations endpoint: ``/metrics`` (Prometheus), ``/healthz`` (the loop is alive) and
``/readyz`` (partitions assigned and their state restored)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from stream.errors import PortError

log = logging.getLogger(__name__)


class Health:
    """Liveness and readiness as the run loop reports them (thread-safe enough: plain assignments)."""

    def __init__(self, stall_after_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.stall_after_s = stall_after_s
        self.clock = clock
        self.last_beat = clock()
        self.ready = False

    def beat(self) -> None:
        self.last_beat = self.clock()

    def alive(self) -> bool:
        return self.clock() - self.last_beat < self.stall_after_s


def _handler(registry: CollectorRegistry, health: Health) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                ok = health.alive()
                self._send(200 if ok else 503, b"ok\n" if ok else b"stalled\n")
            elif path == "/readyz":
                ok = health.ready and health.alive()
                self._send(200 if ok else 503, b"ready\n" if ok else b"not ready\n")
            else:
                self._send(404, b"not found\n")

        def _send(self, code: int, body: bytes, ctype: str = "text/plain; charset=utf-8") -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            log.debug("http " + format, *args)

    return Handler


def serve(host: str, port: int, registry: CollectorRegistry, health: Health) -> ThreadingHTTPServer:
    """Start the endpoint on a daemon thread; ``port`` 0 picks a free port (see ``server_address``)."""
    try:
        server = ThreadingHTTPServer((host, port), _handler(registry, health))
    except OSError as exc:  # in use, not allowed, or no such address
        raise PortError(f"cannot listen on {host}:{port} for metrics ({exc.strerror}); "
                        "choose another with --metrics-port (0: any free port)") from None
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="privwatch-http", daemon=True).start()
    log.info("metrics endpoint host=%s port=%d", host, server.server_address[1])
    return server
