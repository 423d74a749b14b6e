"""Pytest fixture for tests against a real Prometheus (the Debian ``prometheus`` package).

``prometheus_server`` is a factory: ``start("127.0.0.1:9464")`` writes a config that scrapes that
target every second as ``job="privwatch"`` and loads the repository's rules
(``deploy/prometheus/rules``), starts ``/usr/bin/prometheus`` on a free loopback port with its data in
a temporary directory, waits for ``/-/ready`` and returns a :class:`PrometheusServer`. Every server
started is stopped after the test.

A missing ``prometheus`` binary makes the fixture *fail*, never skip: ``make sysdeps`` installs it.
Set ``PRIVWATCH_TEST_PROMETHEUS`` to use another binary.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
RULES_DIR = ROOT / "deploy" / "prometheus" / "rules"
DEFAULT_BINARY = "/usr/bin/prometheus"
ENV_BINARY = "PRIVWATCH_TEST_PROMETHEUS"
JOB = "privwatch"  # the rules select up{job="privwatch"}


def prometheus_binary() -> str:
    """Path of the Prometheus server binary; fails the test when there is none."""
    candidate = os.environ.get(ENV_BINARY) or DEFAULT_BINARY
    found = shutil.which(candidate) or shutil.which("prometheus")
    if not found:
        pytest.fail(f"Prometheus not found at {candidate}: run 'make sysdeps' (Debian package 'prometheus')")
    return found


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (a later bind can still race with other processes)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get_json(url: str, timeout_s: float = 10.0) -> dict[str, Any]:
    """GET ``url`` and decode its JSON body, also for 4xx/5xx answers (the API explains its errors)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 (loopback URL)
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        body = exc.read()
        try:
            return json.loads(body)
        except ValueError:
            text = body.decode("utf-8", "replace")
            return {"status": "error", "errorType": f"http_{exc.code}", "error": text}


class PrometheusServer:
    """A running Prometheus and a few helpers on its HTTP API.

    Parameters
    ----------
    process : subprocess.Popen
        The server process.
    url : str
        Base URL, ``http://127.0.0.1:PORT``.
    workdir : pathlib.Path
        Directory holding its config, data and log.
    """

    def __init__(self, process: subprocess.Popen[bytes], url: str, workdir: Path) -> None:
        self.process = process
        self.url = url
        self.workdir = workdir

    def __repr__(self) -> str:
        return f"PrometheusServer(url={self.url!r}, pid={self.process.pid})"

    @property
    def log_path(self) -> Path:
        return self.workdir / "prometheus.log"

    def log_tail(self, n_chars: int = 4000) -> str:
        """The end of the server's log, for failure messages."""
        try:
            return self.log_path.read_text(errors="replace")[-n_chars:]
        except OSError:
            return ""

    def api(self, path: str, **params: str) -> dict[str, Any]:
        """GET ``/api/v1/<path>`` with query parameters; the decoded JSON answer (errors included)."""
        query = urllib.parse.urlencode(params)
        return _get_json(f"{self.url}/api/v1/{path}" + (f"?{query}" if query else ""))

    def query(self, expr: str) -> dict[str, Any]:
        """Evaluate ``expr`` now (``/api/v1/query``). Returns the whole answer: ``status`` is
        ``"success"`` with ``data`` or ``"error"`` with ``errorType`` and ``error``."""
        return self.api("query", query=expr)

    def values(self, expr: str) -> list[dict[str, Any]]:
        """The result vector of ``expr``; fails the test on a query error."""
        answer = self.query(expr)
        if answer.get("status") != "success":
            pytest.fail(f"query {expr!r} failed: {answer.get('errorType')}: {answer.get('error')}")
        return list(answer["data"]["result"])

    def wait_for(self, expr: str, timeout_s: float = 60.0,
                 predicate: Callable[[list[dict[str, Any]]], bool] = bool) -> list[dict[str, Any]]:
        """Poll ``expr`` until ``predicate(result)`` holds (default: a non-empty result)."""
        deadline = time.monotonic() + timeout_s
        result: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            result = self.values(expr)
            if predicate(result):
                return result
            time.sleep(0.5)
        targets = self.api("targets").get("data", {}).get("activeTargets", [])
        health = [(t.get("scrapeUrl"), t.get("health"), t.get("lastError")) for t in targets]
        pytest.fail(f"timed out after {timeout_s}s waiting for {expr!r}; last result {result}; "
                    f"targets {health}")

    def stop(self, timeout_s: float = 15.0) -> None:
        """Terminate the server (kill it if it does not stop in time)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout_s)


def write_config(workdir: Path, target: str, scrape_interval: str, rule_files: Sequence[Path]) -> Path:
    """Write a scrape config for ``target`` (JSON is YAML) and return its path."""
    config = {
        "global": {"scrape_interval": scrape_interval, "scrape_timeout": scrape_interval,
                   "evaluation_interval": scrape_interval},
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": [target]}]}],
    }
    path = workdir / "prometheus.yml"
    path.write_text(json.dumps(config, indent=2))
    return path


def wait_ready(server: PrometheusServer, timeout_s: float) -> None:
    """Wait until ``/-/ready`` answers 200; fail with the log when the process dies or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"prometheus exited with {server.process.returncode}:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(server.url + "/-/ready", timeout=2) as response:  # noqa: S310
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"prometheus not ready after {timeout_s}s:\n{server.log_tail()}")


def start_prometheus(workdir: Path, target: str, scrape_interval: str = "1s",
                     rule_files: Sequence[Path] | None = None, timeout_s: float = 60.0) -> PrometheusServer:
    """Start Prometheus scraping ``target`` (``host:port``) with the repository's rules; wait until ready."""
    binary = prometheus_binary()
    rules = sorted(RULES_DIR.glob("*.rules.yml")) if rule_files is None else list(rule_files)
    workdir.mkdir(parents=True, exist_ok=True)
    config = write_config(workdir, target, scrape_interval, rules)
    last_error: Exception | None = None
    for _attempt in range(3):  # a free port can be taken between choosing and binding it
        port = free_port()
        log = open(workdir / "prometheus.log", "ab")  # noqa: SIM115 (the child process owns it)
        process = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=info"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        log.close()
        server = PrometheusServer(process, f"http://127.0.0.1:{port}", workdir)
        try:
            wait_ready(server, timeout_s)
            return server
        except RuntimeError as exc:
            server.stop()
            last_error = exc
            if "address already in use" not in str(exc):
                break
    pytest.fail(f"could not start Prometheus: {last_error}")


@pytest.fixture
def prometheus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., PrometheusServer]]:
    """Factory ``start(target, scrape_interval="1s", rule_files=None) -> PrometheusServer``.

    ``target`` is the ``host:port`` to scrape as ``job="privwatch"``; ``rule_files`` defaults to the
    repository's rules. Servers are stopped after the test.
    """
    started: list[PrometheusServer] = []

    def start(target: str, scrape_interval: str = "1s",
              rule_files: Sequence[Path] | None = None) -> PrometheusServer:
        server = start_prometheus(tmp_path_factory.mktemp("prometheus"), target, scrape_interval, rule_files)
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()
