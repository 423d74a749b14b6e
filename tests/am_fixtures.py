"""A real Prometheus Alertmanager for tests, started on free loopback ports.

Integration tests must fail, not skip, when Alertmanager is missing (docs/operations.md): CI expects it.
``PRIVWATCH_TEST_ALERTMANAGER`` overrides the binary path.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

AM_BINARY = os.environ.get("PRIVWATCH_TEST_ALERTMANAGER", "/usr/bin/prometheus-alertmanager")
READY_TIMEOUT_S = 20.0

# group_by incident_id: one incident is one group; group_wait 0s / group_interval 1s keep tests fast.
CONFIG = """\
global:
  resolve_timeout: 5m
route:
  receiver: "null"
  group_by: ["alertname", "incident_id"]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: "null"
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (loopback test server)
        return json.loads(response.read())


def wait_for(predicate: Callable[[], Any], timeout_s: float = 10.0, interval_s: float = 0.05) -> Any:
    """Poll until ``predicate()`` is truthy and return it; fail the test with a message otherwise."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout_s}s: {getattr(predicate, '__name__', predicate)}")
        time.sleep(interval_s)


class AlertmanagerProcess:
    """One Alertmanager: :meth:`start` and :meth:`stop` may be called repeatedly on the same port."""

    def __init__(self, workdir: Path, port: int | None = None, web_config: str | None = None,
                 ssl_context: Any = None, headers: dict[str, str] | None = None) -> None:
        if not os.access(AM_BINARY, os.X_OK):
            pytest.fail(f"Alertmanager not found at {AM_BINARY}: install the Debian package "
                        "prometheus-alertmanager (make sysdeps)", pytrace=False)
        self.workdir = workdir
        self.port = port or free_port()
        self.url = f"{'https' if web_config else 'http'}://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        #: ``--web.config.file`` contents (TLS, basic auth), and how the fixture's own requests pass them
        self.web_config, self.ssl_context, self.headers = web_config, ssl_context, headers or {}
        workdir.mkdir(parents=True, exist_ok=True)
        self.config = workdir / "alertmanager.yml"
        self.config.write_text(CONFIG)
        self.log = workdir / "alertmanager.log"

    def start(self) -> None:
        args = [
            AM_BINARY, f"--config.file={self.config}", f"--storage.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--cluster.listen-address=",  # empty: no gossip, no second port
        ]
        if self.web_config:
            (self.workdir / "web.yml").write_text(self.web_config)
            args.append(f"--web.config.file={self.workdir / 'web.yml'}")
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not self.ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = self.log.read_text(errors="replace")[-2000:]
                pytest.fail(f"Alertmanager did not become ready on {self.url}:\n{tail}", pytrace=False)
            time.sleep(0.05)

    def get(self, path: str) -> Any:
        request = urllib.request.Request(self.url + path, headers=self.headers)
        with urllib.request.urlopen(request, timeout=5, context=self.ssl_context) as response:  # noqa: S310
            return json.loads(response.read())

    def ready(self) -> bool:
        try:
            request = urllib.request.Request(self.url + "/-/ready", headers=self.headers)
            with urllib.request.urlopen(request, timeout=1, context=self.ssl_context) as response:  # noqa: S310
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def alerts(self) -> list[dict[str, Any]]:
        """Active alerts (``GET /api/v2/alerts``)."""
        return list(self.get("/api/v2/alerts"))

    def groups(self) -> list[dict[str, Any]]:
        """Alert groups (``GET /api/v2/alerts/groups``)."""
        return list(self.get("/api/v2/alerts/groups"))


# Registered under short names; test modules import the *_fixture functions (which pytest then
# finds by their ``name=``), so no test argument shadows an import.
@pytest.fixture(name="alertmanager_factory")
def alertmanager_factory_fixture(tmp_path: Path) -> Iterator[Callable[..., AlertmanagerProcess]]:
    """Make Alertmanagers (not started); all are stopped at teardown."""
    made: list[AlertmanagerProcess] = []

    def make(port: int | None = None, **options: Any) -> AlertmanagerProcess:
        am = AlertmanagerProcess(tmp_path / f"am{len(made)}", port, **options)
        made.append(am)
        return am

    yield make
    for am in made:
        am.stop()


@pytest.fixture(name="alertmanager")
def alertmanager_fixture(alertmanager_factory: Callable[..., AlertmanagerProcess]) -> AlertmanagerProcess:
    """A running Alertmanager; its base URL is ``.url``."""
    am = alertmanager_factory()
    am.start()
    return am


def make_alert(n: int = 1, principal: str = "u-4821", detector: str = "volume", level: str = "critical",
               ts: str = "2026-11-26T09:31:12.500Z", **extra: Any) -> dict[str, Any]:
    """A contract alert (``extra`` overrides or adds fields)."""
    alert = {
        "type": "alert", "alert_id": f"{detector}:{principal}:e{n}", "ts": ts,
        "detected_at": ts, "detector": detector, "principal_id": principal,
        "related_principal_ids": ["u-9"], "resource_ids": ["customers.payment_methods"],
        "severity": 91.5, "level": level, "score": 7.3, "title": f"{detector} finding {n}",
        "reasons": [f"{detector} reason {n}"], "evidence_event_ids": [f"e{n}"], "model_version": "0.1.0",
    }
    alert.update(extra)
    return alert
