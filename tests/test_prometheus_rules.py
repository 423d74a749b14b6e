"""Prometheus rules and Alertmanager routing, checked by the real tools (promtool, amtool).

No network and no server: the tools only parse and evaluate files. A missing tool is a failure, not a
skip (``make sysdeps`` installs the Debian packages ``prometheus`` and ``prometheus-alertmanager``).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from stream.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
PROM_DIR = ROOT / "deploy" / "prometheus"
RULES = PROM_DIR / "rules" / "privwatch.rules.yml"
RULE_TESTS = sorted((PROM_DIR / "tests").glob("*.test.yml"))
AM_CONFIG = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"

INCIDENT = "alertname=PrivacyIncident"  # what stream/alertmanager posts
SERVICE_ALERTS = {
    "PrivwatchDown", "PrivwatchConsumerLagGrowing", "PrivwatchDeadLettersRising", "PrivwatchNoEvents",
    "PrivwatchSnapshotStale", "PrivwatchAlertStorm", "PrivwatchCommitFailures",
    "PrivwatchAlertmanagerSendFailures", "PrivwatchProduceFailures", "PrivwatchNotReady", "PrivwatchColdStart",
    "PrivwatchStateRestoreRefused", "PrivwatchStateRebuilt", "PrivwatchStateRebuildStuck", "PrivwatchCommonsStale",
}


def tool(name: str) -> str:
    """Path of a Prometheus/Alertmanager command-line tool; fail (never skip) when it is missing."""
    found = shutil.which(name) or shutil.which(f"/usr/bin/{name}")
    if not found:
        pytest.fail(f"{name} not found: run 'make sysdeps' "
                    "(Debian packages prometheus, prometheus-alertmanager)")
    return found


def run_tool(args: list[str], cwd: Path = ROOT) -> str:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{' '.join(args)} failed ({done.returncode}):\n{output}"
    return output


def alerting_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_promtool_check_rules() -> None:
    run_tool([tool("promtool"), "check", "rules", str(RULES)])


def test_promtool_check_config() -> None:
    # rule_files are relative to the config's directory (as when mounted at /etc/prometheus).
    output = run_tool([tool("promtool"), "check", "config", "prometheus.yml"], cwd=PROM_DIR)
    assert "1 rule files found" in output, output


def test_promtool_rule_unit_tests() -> None:
    assert RULE_TESTS, "no promtool test files"
    run_tool([tool("promtool"), "test", "rules", *(path.name for path in RULE_TESTS)], cwd=PROM_DIR / "tests")


def test_amtool_check_config() -> None:
    run_tool([tool("amtool"), "check-config", str(AM_CONFIG)])


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        ([INCIDENT, "level=critical", "severity=page", "incident_id=ab12"], "privacy-oncall"),
        ([INCIDENT, "level=medium", "severity=page", "incident_id=ab12"], "privacy-oncall"),
        ([INCIDENT, "level=low", "severity=ticket", "incident_id=ab12"], "privacy-triage"),
        ([INCIDENT, "level=info", "severity=ticket", "incident_id=ab12"], "privacy-triage"),
        (["alertname=PrivwatchDown", "severity=critical", "team=platform"], "platform-pager"),
        (["alertname=PrivwatchNoEvents", "severity=warning", "team=platform"], "platform"),
    ],
)
def test_alertmanager_routes(labels: list[str], receiver: str) -> None:
    output = run_tool([tool("amtool"), "config", "routes", "test", f"--config.file={AM_CONFIG}",
                       f"--verify.receivers={receiver}", *labels])
    assert receiver in output


def test_the_service_alerts_exist() -> None:
    assert {rule["alert"] for rule in alerting_rules()} == SERVICE_ALERTS


@pytest.mark.parametrize("rule", alerting_rules(), ids=lambda rule: rule["alert"])
def test_alert_has_severity_and_annotations(rule: dict[str, Any]) -> None:
    assert rule["labels"]["severity"] in {"critical", "warning"}
    assert rule["labels"]["team"] == "platform"  # routed to the platform receivers, never to privacy on-call
    annotations = rule["annotations"]
    for key in ("summary", "description", "runbook_url"):
        assert annotations.get(key, "").strip(), f"{rule['alert']} lacks {key}"
    assert annotations["runbook_url"].startswith(Settings().runbook_base_url + "/")
    assert annotations["runbook_url"].lower().endswith("#" + rule["alert"].lower())


def test_every_alert_is_unit_tested_firing_and_silent() -> None:
    cases = [case for path in RULE_TESTS for group in yaml.safe_load(path.read_text())["tests"]
             for case in group.get("alert_rule_test", [])]
    fires = {c["alertname"] for c in cases if c.get("exp_alerts")}
    silent = {c["alertname"] for c in cases if not c.get("exp_alerts")}
    assert SERVICE_ALERTS - fires == set(), "alerts never tested firing"
    assert SERVICE_ALERTS - silent == set(), "alerts never tested silent"


def test_recording_rules_are_unit_tested() -> None:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    recorded = {rule["record"] for group in groups for rule in group["rules"] if "record" in rule}
    text = "".join(path.read_text() for path in RULE_TESTS)
    tested = {name for name in recorded if name in text}
    assert len(tested) >= 5, f"only {sorted(tested)} of {sorted(recorded)} are unit tested"
