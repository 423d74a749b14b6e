"""The operations endpoint under slow, half-open connections: a bounded number of threads, idle
connections closed by the server, and scrapes still answered (waitress, stream/ops/http.py)."""

from __future__ import annotations

import socket
import threading
import urllib.error
import urllib.request

import pytest
from prometheus_client import CollectorRegistry

from stream.ops import http
from stream.ops.http import Health, serve
from stream.ops.metrics import Metrics

pytestmark = pytest.mark.integration

HALF_OPEN = 150


def test_slow_half_open_connections_neither_pile_up_threads_nor_starve_scrapes() -> None:
    registry = CollectorRegistry()
    Metrics(registry, ["volume"])
    health = Health()
    health.ready = True
    server = serve("127.0.0.1", 0, registry, health)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    threads_before = threading.active_count()
    slow = []
    try:
        for _ in range(HALF_OPEN):  # a request line and no more, as a slowloris client sends
            sock = socket.create_connection(("127.0.0.1", server.server_address[1]))
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
            slow.append(sock)
        assert threading.active_count() <= threads_before + 1  # no thread per connection
        with urllib.request.urlopen(url + "/metrics", timeout=90) as response:  # answered all the same
            body = response.read()
        assert b"privwatch_events_consumed_total" in body and b"process_cpu_seconds_total" in body
        for sock in slow:  # each is closed by the server once idle too long, not held forever
            sock.settimeout(http.IDLE_TIMEOUT_S * 6)
            while sock.recv(1024):
                pass
        assert threading.active_count() <= threads_before + 1
        health.blocked = "outputs not acknowledged (MessageSizeTooLargeError)"
        with pytest.raises(urllib.error.HTTPError) as not_ready:
            urllib.request.urlopen(url + "/readyz", timeout=30)
        assert not_ready.value.code == 503 and b"outputs not acknowledged" in not_ready.value.read()
    finally:
        for sock in slow:
            sock.close()
        server.shutdown()


def test_the_endpoint_binds_loopback_by_default() -> None:
    from stream.settings import Settings

    assert Settings().metrics_host == "127.0.0.1"
