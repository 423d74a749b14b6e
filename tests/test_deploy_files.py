"""The deployment files parse and agree with the code: settings, metric names, ports, images, paths.

No Docker here, so compose and Kubernetes files are checked by parsing and cross-referencing.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from stream.ops.metrics import EngineCollector, Metrics
from stream.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
K8S = DEPLOY / "k8s"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "privwatch.json"
GRAFANA_PROVISIONING = DEPLOY / "grafana" / "provisioning"
RULES = DEPLOY / "prometheus" / "rules" / "privwatch.rules.yml"
RULE_TESTS = sorted((DEPLOY / "prometheus" / "tests").glob("*.test.yml"))
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
DOCKERFILE = ROOT / "Dockerfile"  # its own checks: test_deploy_docker.py
METRICS_PORT = Settings().metrics_port  # 9464

#: Images the deployment may reference: (repository, pinned tag or None for "any explicit tag").
KNOWN_IMAGES = {
    "apache/kafka": "4.1.1",
    "prom/prometheus": None,
    "prom/alertmanager": None,
    "grafana/grafana": None,
    "privwatch": None,  # built from the Dockerfile by compose
    "ghcr.io/privwatch/privwatch": None,
}
ENV_VAR = re.compile(r"\bPRIVWATCH_[A-Z0-9_]+\b")
METRIC = re.compile(r"\bprivwatch_[a-z0-9_]+\b")
RECORDED = re.compile(r"\bprivwatch:[a-z0-9_]+:[a-z0-9_]+\b")
BY_LABELS = re.compile(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)")
TEXT_SUFFIXES = {".py", ".yml", ".yaml", ".json", ".sh", ".md", ".properties", ".toml", ".txt", ""}


def project_version() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def exposition() -> set[str]:
    """Sample names in the exposition of a fresh metrics registry (and the engine collector)."""
    registry = CollectorRegistry()
    Metrics(registry, ["volume"])
    registry.register(EngineCollector(lambda: (0, 0)))
    families = text_string_to_metric_families(generate_latest(registry).decode())
    return {sample.name for family in families for sample in family.samples}


def metric_objects() -> list[Any]:
    return [value for value in vars(Metrics(CollectorRegistry(), ())).values() if hasattr(value, "describe")]


def family_names() -> set[str]:
    """Every series name the code can expose, labelled children or not (prometheus_client's suffixes).

    Labelled metrics without pre-initialised children (drift by signal, suppressed by reason, lag per
    partition) have no sample in a fresh exposition but are exposed once used.
    """
    names = {"privwatch_live_principals", "privwatch_state_bytes"}
    for metric in metric_objects():
        for family in metric.describe():
            if family.type == "histogram":
                names.update(family.name + s for s in ("_bucket", "_sum", "_count"))
            else:
                names.add(family.name + {"counter": "_total", "info": "_info"}.get(family.type, ""))
    return names


def label_names() -> set[str]:
    names = {"job", "instance", "le"}
    for metric in metric_objects():
        names.update(metric._labelnames)  # noqa: SLF001 - prometheus_client keeps no public accessor
    return names | {"version", "python"}  # the build Info's keys


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def dashboard_panels() -> list[dict[str, Any]]:
    panels = []
    for panel in dashboard()["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))  # collapsed rows hold their panels
    return panels


def dashboard_exprs() -> list[str]:
    return [t["expr"] for p in dashboard_panels() for t in p.get("targets", []) if t.get("expr")]


def rule_exprs() -> list[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def recorded_names() -> set[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["record"] for group in groups for rule in group["rules"] if "record" in rule}


def deploy_text_files() -> Iterator[Path]:
    for path in sorted([*DEPLOY.rglob("*"), DOCKERFILE]):
        if path.is_file() and path.suffix in TEXT_SUFFIXES and "__pycache__" not in path.parts:
            yield path


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def k8s_docs() -> dict[str, dict[str, Any]]:
    """Kind -> manifest, for every YAML file under deploy/k8s (one document per file)."""
    docs = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            docs[doc["kind"]] = doc
    return docs


def image_ok(image: str) -> bool:
    repo, _, tag = image.rpartition(":")
    if not repo or "/" in tag:
        return False
    pinned = KNOWN_IMAGES.get(repo, "unknown")
    return pinned != "unknown" and tag != "latest" and (pinned is None or pinned == tag)


# --------------------------------------------------------------------------- settings and env vars


def test_every_privwatch_env_var_in_deploy_is_a_setting() -> None:
    known = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    ignored = (ENV_PREFIX + "CONFIG", ENV_PREFIX + "TEST_")  # as stream.settings._from_env
    used: dict[str, set[str]] = {}
    for path in deploy_text_files():
        for name in ENV_VAR.findall(path.read_text(errors="replace")):
            used.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    assert used, "no PRIVWATCH_* variable found in deploy/: the scan is broken"
    unknown = {name: files for name, files in used.items()
               if name not in known and not name.startswith(ignored)}
    assert not unknown, f"not settings: {unknown}"


# --------------------------------------------------------------------------- metrics in rules and dashboard


def test_metric_names_in_rules_and_dashboard_exist() -> None:
    exposed = exposition() | family_names()
    ours = {name for name in exposition() if name.startswith("privwatch_") and not name.endswith("_created")}
    assert ours <= family_names()
    assert {"process_cpu_seconds_total", "process_resident_memory_bytes"} <= exposition()  # on the same registry
    sources = {
        "rules": RULES.read_text(),
        "rule tests": "".join(path.read_text() for path in RULE_TESTS),
        "dashboard": DASHBOARD.read_text(),
    }
    for source, text in sources.items():
        missing = set(METRIC.findall(text)) - exposed
        assert not missing, f"{source} uses metrics the service does not expose: {sorted(missing)}"


def test_every_metric_family_is_on_the_dashboard() -> None:
    used = set(METRIC.findall(DASHBOARD.read_text()))
    families = {re.sub(r"_(bucket|sum|count)$", "", name) for name in family_names()}
    shown = {re.sub(r"_(bucket|sum|count)$", "", name) for name in used}
    assert families - shown == set(), "metric families without a panel"


def test_recorded_series_used_are_defined() -> None:
    defined = recorded_names()
    for text in (RULES.read_text(), DASHBOARD.read_text()):
        assert set(RECORDED.findall(text)) <= defined


@pytest.mark.parametrize("expr", dashboard_exprs() + rule_exprs())
def test_grouping_labels_exist(expr: str) -> None:
    labels = label_names()
    for group in BY_LABELS.findall(expr):
        names = {name.strip() for name in group.split(",") if name.strip()}
        assert names <= labels, f"{expr}: unknown labels {names - labels}"


# --------------------------------------------------------------------------- dashboard


def test_dashboard_panels_are_valid() -> None:
    panels = dashboard_panels()
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    rows = [p["title"] for p in panels if p["type"] == "row"]
    assert rows == ["Health", "Throughput & lag", "Detection", "State", "Alertmanager", "Outputs",
                    "Reference data (directory, catalog)", "Commons (baselines shared across instances)"]
    for panel in panels:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
            assert target["expr"].strip(), panel["title"]


def test_dashboard_panels_do_not_overlap() -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in dashboard_panels():
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


def test_dashboard_has_datasource_variable() -> None:
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("job", "instance"):
        assert variables[name]["datasource"]["uid"] == "${datasource}"
        assert METRIC.findall(variables[name]["definition"]) == ["privwatch_build_info"]


def test_grafana_provisioning() -> None:
    datasources = yaml.safe_load((GRAFANA_PROVISIONING / "datasources" / "prometheus.yml").read_text())
    (prom,) = datasources["datasources"]
    assert prom["type"] == "prometheus"
    assert prom["url"] == "http://prometheus:9090"
    provisioning = yaml.safe_load((GRAFANA_PROVISIONING / "dashboards" / "privwatch.yml").read_text())
    providers = provisioning["providers"]
    grafana_volumes = compose()["services"]["grafana"]["volumes"]
    mounted = {v.split(":")[1] for v in grafana_volumes if v.startswith("./grafana/dashboards")}
    assert {p["options"]["path"] for p in providers} <= mounted


# --------------------------------------------------------------------------- docker compose


def test_compose_images_ports_and_files() -> None:
    services = compose()["services"]
    assert {"kafka", "prometheus", "alertmanager", "grafana", "privwatch"} <= set(services)
    for name, service in services.items():
        assert image_ok(service["image"]), f"{name}: unknown or unpinned image {service['image']}"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: {source} does not exist"
    build = services["privwatch"]["build"]
    assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE
    assert services["privwatch"]["image"] == f"privwatch:{project_version()}"
    env = services["privwatch"]["environment"]
    assert int(env["PRIVWATCH_METRICS_PORT"]) == METRICS_PORT
    assert f"{METRICS_PORT}:{METRICS_PORT}" in services["privwatch"]["ports"]
    assert env["PRIVWATCH_BOOTSTRAP_SERVERS"].split(":")[0] == "kafka"
    kafka_env = services["kafka"]["environment"]
    assert env["PRIVWATCH_BOOTSTRAP_SERVERS"] in kafka_env["KAFKA_ADVERTISED_LISTENERS"]
    assert env["PRIVWATCH_ALERTMANAGER_URL"].removeprefix("http://").split(":")[0] in services



def test_prometheus_config_targets_compose_services() -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    services = compose()["services"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    (target,) = jobs["privwatch"]["static_configs"][0]["targets"]
    assert target == f"privwatch:{METRICS_PORT}"
    for job in config["scrape_configs"]:
        for host_port in job["static_configs"][0]["targets"]:
            assert host_port.split(":")[0] in set(services) | {"localhost"}
    (alertmanager,) = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert alertmanager.split(":")[0] in services


# --------------------------------------------------------------------------- Kubernetes


def test_k8s_manifests() -> None:
    docs = k8s_docs()
    kinds = {"Deployment", "Service", "ConfigMap", "PodDisruptionBudget", "PodMonitor", "Kustomization"}
    assert kinds <= set(docs)
    kustomization = docs["Kustomization"]
    for resource in kustomization["resources"]:
        assert (K8S / resource).is_file(), resource
    assert "namespace" not in kustomization
    for kind, doc in docs.items():
        assert "namespace" not in doc.get("metadata", {}), f"{kind} should be namespace-less"
    (override,) = kustomization["images"]
    assert override["newTag"] == project_version()


def test_k8s_deployment() -> None:
    docs = k8s_docs()
    deployment = docs["Deployment"]
    spec = deployment["spec"]
    pod = spec["template"]
    assert spec["replicas"] == 3
    assert spec["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(METRICS_PORT)
    assert annotations["prometheus.io/path"] == "/metrics"
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["spec"]["containers"]
    assert image_ok(container["image"]), container["image"]
    assert container["image"].endswith(":" + project_version())
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"metrics": METRICS_PORT}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert container["resources"]["requests"] and container["resources"]["limits"]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    (config_ref,) = container["envFrom"]
    assert config_ref["configMapRef"]["name"] == docs["ConfigMap"]["metadata"]["name"]
    secret_env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
    assert set(secret_env) == {"PRIVWATCH_STATE_KEY", "PRIVWATCH_ALERT_ID_KEY", "PRIVWATCH_SASL_PLAIN_PASSWORD"}
    analysts = docs["ConfigMap"]["data"]["PRIVWATCH_ANALYSTS_FILE"]
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert analysts.startswith(mounts["analysts"]["mountPath"] + "/") and mounts["analysts"]["readOnly"]
    assert volumes["analysts"]["secret"]["secretName"]
    settings_env = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    assert set(docs["ConfigMap"]["data"]) <= settings_env
    assert not set(docs["ConfigMap"]["data"]) & set(secret_env), "secrets belong in the Secret"
    assert int(docs["ConfigMap"]["data"]["PRIVWATCH_METRICS_PORT"]) == METRICS_PORT


def test_k8s_service_pdb_podmonitor() -> None:
    docs = k8s_docs()
    pod_labels = docs["Deployment"]["spec"]["template"]["metadata"]["labels"]
    (port,) = docs["Service"]["spec"]["ports"]
    assert port["port"] == METRICS_PORT and port["targetPort"] == "metrics"
    assert docs["Service"]["spec"]["selector"].items() <= pod_labels.items()
    pdb = docs["PodDisruptionBudget"]
    assert pdb["apiVersion"] == "policy/v1" and pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    monitor = docs["PodMonitor"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    assert pod_labels[monitor["spec"]["jobLabel"]] == "privwatch"  # the rules select job="privwatch"
