"""End to end: ``privwatch run`` on a real Kafka, scraped by a real Prometheus.

Every metric family is present in Prometheus, every dashboard panel query and every recording/alerting
rule expression evaluates without error there, the main panels return data, and no label value (in the
service's exposition or in Prometheus) carries an identifier the test streamed.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
import yaml
from factories import access, permission
from prom_fixtures import PrometheusServer, free_port, prometheus_server  # noqa: F401 - fixture
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from stream.ops.metrics import Metrics

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "privwatch.json"
RULES = ROOT / "deploy" / "prometheus" / "rules" / "privwatch.rules.yml"
ENGINE_GAUGES = ("privwatch_live_principals", "privwatch_state_bytes")

#: Grafana variables in panel queries and what they become for a plain Prometheus query.
GRAFANA_VARIABLES = {
    "__rate_interval": "1m", "__interval": "15s", "__range": "5m", "job": ".*", "instance": ".*",
}
VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")
MAIN_PANELS = ("Events consumed /s by type and outcome", "Alerts /h by detector and level", "Up")

N_PRINCIPALS = 12
N_ACCESS = 300
N_PERMISSION = 30
N_MALFORMED = 10


# --------------------------------------------------------------------------- the service


def privwatch_command() -> list[str]:
    """The ``privwatch`` console script next to this interpreter (``python -m stream`` otherwise)."""
    for candidate in (Path(sys.executable).with_name("privwatch"), ROOT / ".venv" / "bin" / "privwatch"):
        if candidate.exists():
            return [str(candidate)]
    return [sys.executable, "-m", "stream"]


class ServiceProcess:
    """``privwatch run`` as a subprocess with its log in a file."""

    def __init__(self, args: list[str], log_path: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PRIVWATCH_")}  # flags only
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(privwatch_command() + args, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, env=env, cwd=ROOT)

    def log_tail(self, n_chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-n_chars:]

    def stop(self, timeout_s: float = 60.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def wait_for_endpoint(service: ServiceProcess, url: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            pytest.fail(f"privwatch exited with {service.process.returncode}:\n{service.log_tail()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (loopback)
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    pytest.fail(f"{url} did not answer within {timeout_s}s:\n{service.log_tail()}")


@pytest.fixture
def privwatch_service(kafka_bootstrap: str, fresh_topics: Callable[..., dict[str, str]],
                      tmp_path: Path) -> Iterator[tuple[ServiceProcess, dict[str, str], int]]:
    """A running ``privwatch run`` on fresh topics; yields (process, topics, metrics port)."""
    topics = fresh_topics(n_partitions=3)
    port = free_port()
    args = [
        "run", "--bootstrap-servers", kafka_bootstrap, "--group-id", f"pw-e2e-{uuid.uuid4().hex[:8]}",
        "--access-topic", topics["access"], "--permission-topic", topics["permission"],
        "--alerts-topic", topics["alerts"], "--dead-letter-topic", topics["dead-letter"],
        "--feedback-topic", topics["feedback"], "--state-topic", topics["state"],
        "--metrics-host", "127.0.0.1", "--metrics-port", str(port), "--no-durable-state",
    ]
    service = ServiceProcess(args, tmp_path / "privwatch.log")
    try:
        wait_for_endpoint(service, f"http://127.0.0.1:{port}/metrics")
        yield service, topics, port
    finally:
        service.stop()


# --------------------------------------------------------------------------- the events


def stream_events(bootstrap: str, topics: dict[str, str]) -> set[str]:
    """Produce contract-valid access and permission events (and a few malformed records) keyed as the
    contract says; return every principal, resource, subject, device and event identifier used."""
    from kafka import KafkaProducer

    token = uuid.uuid4().hex[:10]
    principals = [f"e2e-u-{token}-{i}" for i in range(N_PRINCIPALS)]
    resources = [f"e2e_db.table_{token}_{j}" for j in range(6)]
    admin = f"e2e-admin-{token}"
    identifiers = {*principals, *resources, admin, *(f"lt-{p}" for p in principals)}
    start = time.time() - 3600  # the last hour of event time, in order, never in the future
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
    try:
        for n in range(N_ACCESS):
            principal, resource = principals[n % N_PRINCIPALS], resources[n % len(resources)]
            subjects = [f"e2e-s-{token}-{(n * 7 + k) % 97}" for k in range(1 + n % 4)]
            event_id = f"e2e-ev-{token}-{n}"
            identifiers.update(subjects, {event_id})
            doc = access(event_id, start + n * 10, principal, action="export" if n % 5 == 0 else "read",
                         records=len(subjects), subjects=len(subjects), subject_refs=subjects,
                         resource={"id": resource, "kind": "table", "sensitivity": "restricted",
                                   "categories": ["pii.contact"]})
            producer.send(topics["access"], key=principal.encode(), value=orjson.dumps(doc))
        for n in range(N_PERMISSION):
            target, resource = principals[n % N_PRINCIPALS], resources[n % len(resources)]
            event_id = f"e2e-perm-{token}-{n}"
            identifiers.add(event_id)
            doc = permission(event_id, start + n * 100 + 5, target, permission=f"read:{resource}",
                             actor={"id": admin, "kind": "human", "department": "it_admin", "role": "admin"},
                             resource={"id": resource, "kind": "table", "sensitivity": "restricted",
                                       "categories": ["pii.contact"]})
            producer.send(topics["permission"], key=target.encode(), value=orjson.dumps(doc))
        for n in range(N_MALFORMED):  # dead-lettered: the dead-letter panels get data too
            truncated = b'{"type": "access", "principal":'
            producer.send(topics["access"], key=principals[n].encode(), value=truncated)
        producer.flush(30)
    finally:
        producer.close(10)
    return identifiers


# --------------------------------------------------------------------------- expressions


def dashboard_queries() -> dict[str, list[str]]:
    """Panel title -> its query expressions (collapsed rows included)."""
    queries: dict[str, list[str]] = {}
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for p in [panel, *panel.get("panels", [])]:
            exprs = [t["expr"] for t in p.get("targets", []) if t.get("expr")]
            if exprs:
                queries[p["title"]] = exprs
    return queries


def rule_expressions() -> dict[str, str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule.get("record") or rule["alert"]: rule["expr"] for g in groups for rule in g["rules"]}


def substitute(expr: str) -> str:
    """Replace Grafana variables by values a plain Prometheus query accepts."""
    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        assert name in GRAFANA_VARIABLES, f"unknown Grafana variable ${name} in {expr}"
        return GRAFANA_VARIABLES[name]

    return VARIABLE.sub(value, expr)


def expected_series() -> dict[str, str]:
    """Metric family -> the series name that shows it is present in Prometheus."""
    names = {name: name for name in ENGINE_GAUGES}
    metrics = Metrics(CollectorRegistry(), ())
    for value in vars(metrics).values():
        if callable(getattr(value, "describe", None)):
            for family in value.describe():
                suffix = {"counter": "_total", "info": "_info", "histogram": "_bucket"}.get(family.type, "")
                names[family.name] = family.name + suffix
    return names


def label_values_of_exposition(text: str) -> set[str]:
    families = text_string_to_metric_families(text)
    return {value for family in families for sample in family.samples for value in sample.labels.values()}


def metric_names_in_prometheus(prometheus: PrometheusServer) -> set[str]:
    result = prometheus.values('group by (__name__) ({__name__=~"privwatch_.+"})')
    return {r["metric"]["__name__"] for r in result}


# --------------------------------------------------------------------------- the test


@pytest.mark.integration
def test_service_metrics_in_real_prometheus(
    privwatch_service: tuple[ServiceProcess, dict[str, str], int],
    prometheus_server: Callable[..., PrometheusServer],  # noqa: F811 - the fixture imported above
    kafka_bootstrap: str,
) -> None:
    service, topics, port = privwatch_service
    prometheus = prometheus_server(f"127.0.0.1:{port}")
    prometheus.wait_for('up{job="privwatch"} == 1', timeout_s=30)

    identifiers = stream_events(kafka_bootstrap, topics)
    prometheus.wait_for("sum(privwatch_events_consumed_total) > 0", timeout_s=120)
    time.sleep(3)  # a few more scrapes and rule evaluations

    # Every metric family the code defines is exposed and scraped.
    present = metric_names_in_prometheus(prometheus)
    missing = {family: series for family, series in expected_series().items() if series not in present}
    assert not missing, f"metric families missing from Prometheus: {sorted(missing)}\n{service.log_tail()}"

    # Every panel query evaluates without error; the main panels have data.
    queries = dashboard_queries()
    for title, exprs in queries.items():
        for expr in exprs:
            answer = prometheus.query(substitute(expr))
            assert answer["status"] == "success", f"panel {title!r}: {expr}: {answer.get('error')}"
    for title in MAIN_PANELS:
        assert any(prometheus.values(substitute(e)) for e in queries[title]), f"panel {title!r} has no data"
    events_per_s = prometheus.values(substitute(queries["Events consumed /s by type and outcome"][0]))
    assert any(float(r["value"][1]) > 0 for r in events_per_s), events_per_s
    assert prometheus.values('group by (job) (privwatch_build_info)'), "the $job variable would be empty"

    # Every recording and alerting rule expression evaluates without error, as a query and as a rule.
    for name, expr in rule_expressions().items():
        answer = prometheus.query(expr)
        assert answer["status"] == "success", f"rule {name}: {expr}: {answer.get('error')}"
    rules = [r for g in prometheus.api("rules")["data"]["groups"] for r in g["rules"]]
    assert {r["name"] for r in rules} == set(rule_expressions())
    broken = {r["name"]: r.get("lastError") for r in rules if r.get("health") == "err"}
    assert not broken, broken

    # No label value anywhere carries a streamed identifier (all of them contain the run's token).
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:  # noqa: S310
        exposed = label_values_of_exposition(response.read().decode())
    token = _token(identifiers)
    leaked = {v for v in exposed if v in identifiers or token in v}
    assert not leaked, f"identifiers in metric labels: {sorted(leaked)}"
    series = prometheus.api("series", **{"match[]": '{__name__=~"privwatch_.+"}'})["data"]
    scraped = {v for s in series for k, v in s.items() if k != "__name__"}
    leaked = {v for v in scraped if v in identifiers or token in v}
    assert not leaked, f"identifiers in Prometheus labels: {sorted(leaked)}"


def _token(identifiers: set[str]) -> str:
    """The run's random token, which every streamed identifier contains."""
    admin = next(i for i in identifiers if i.startswith("e2e-admin-"))
    return admin.removeprefix("e2e-admin-")


def test_substitute_grafana_variables() -> None:
    assert substitute('rate(x{job=~"$job"}[$__rate_interval])') == 'rate(x{job=~".*"}[1m])'
    assert substitute("increase(x[${__range}])") == "increase(x[5m])"
