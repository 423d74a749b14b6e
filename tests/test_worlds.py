"""Random worlds: drawn from wide ranges, contract-valid, labelled with intensities and benign twins;
and ``privwatch evaluate --worlds``: pooled numbers with intervals, by band, both deployments."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import orjson
import pytest
from test_simulate import assert_valid

from stream.evaluate import cli as evaluate_cli
from stream.evaluate import worlds
from stream.evaluate.pooled import Outcome, PageOutcome, pool, wilson
from stream.evaluate.worlds_report import text_report
from stream.simulate import INCIDENT_KINDS, simulate
from stream.simulate import cli as simulate_cli
from stream.simulate.twins import RANDOM_BENIGN_RATE
from stream.simulate.world import World, band, draw_world


@pytest.fixture(scope="module")
def world_stream() -> tuple[list[dict], list[dict]]:
    world = draw_world(7)
    return simulate(seed=7, principals=120, days=21, world=world)


def test_worlds_differ_from_seed_to_seed_and_not_within_one() -> None:
    a, b = draw_world(7), draw_world(8)
    assert draw_world(7) == a and a != b
    assert a.graded and not World().graded
    assert {"it_admin", "support"} <= set(a.departments)
    assert 150 <= a.principals <= 400 and 21 <= a.days <= 35
    lo, hi = a.intensity or (0.0, 0.0)
    assert 0.0 <= lo < hi <= 1.0
    # wide ranges: across twenty worlds, the shapes really vary
    shapes = [draw_world(s) for s in range(20)]
    assert len({len(w.departments) for w in shapes}) > 1
    assert max(w.activity_sigma for w in shapes) - min(w.activity_sigma for w in shapes) > 0.3
    assert max(w.night_share for w in shapes) > 0.02 and max(w.service_share for w in shapes) > 0.05


def test_a_random_world_is_contract_valid_with_graded_incidents_and_twins(world_stream) -> None:
    events, labels = world_stream
    assert_valid([e for e in events if e["type"] == "permission"] + events[::40])
    incidents = [lab for lab in labels if lab["label"] == "incident"]
    assert {lab["kind"] for lab in incidents} == set(INCIDENT_KINDS)
    assert all(lab["intensity"] == band(lab["strength"]) for lab in incidents)
    benign = Counter(lab["kind"] for lab in labels if lab["label"] == "benign")
    new_twins = {"late_work", "return_from_leave", "device_refresh", "service_redeploy", "misconfigured_job",
                 "reporting_week", "support_backlog", "ticketed_cross_team_access"}
    assert new_twins <= set(RANDOM_BENIGN_RATE) and len(new_twins & set(benign)) >= 6
    assert all("intensity" not in lab for lab in labels if lab["label"] == "benign")


def test_the_default_world_is_unchanged() -> None:
    """The default world's labels carry no intensity, and its organisation is the one it always was."""
    events, labels = simulate(seed=5, principals=20, days=9, baseline_days=4)
    assert all("intensity" not in lab for lab in labels)
    assert events == simulate(seed=5, principals=20, days=9, baseline_days=4, world=World())[0]


def test_simulate_cli_random_world_records_it_in_meta(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    simulate_cli.register(parser.add_subparsers())
    args = parser.parse_args(["simulate", "--world", "random", "--seed", "3", "--principals", "40", "--days", "12",
                              "--baseline-days", "5", "--output", str(tmp_path)])
    assert args.func(args) == 0
    meta = orjson.loads((tmp_path / "meta.json").read_bytes())
    assert meta["world"]["name"] == "random-3" and meta["principals"] == 40


def test_wilson_and_pooling() -> None:
    assert wilson(0, 0) is None and wilson(10, 10)[1] == 1.0
    a = Outcome(principal_days=100.0, principal_days_after=50.0,
                pages=[PageOutcome("x", 90.0, "critical", True, True), PageOutcome("y", 55.0, "medium", False, True)])
    b = Outcome(principal_days=100.0, principal_days_after=50.0, pages=[PageOutcome("x", 70.0, "high", True, False)])
    p = pool([a, b])
    assert p["precision"] == round(2 / 3, 4) and p["severity_auc"] == 1.0
    assert p["false_pages_per_1k_principal_days"] == 5.0
    assert p["false_pages_per_1k_principal_days_after_week_one"] == 10.0
    assert p["level_shares"] == {"critical": 0.333, "high": 0.333, "medium": 0.333}


def test_seed_lists_are_fixed_and_disjoint() -> None:
    assert worlds.TUNING_SEEDS[:3] == (101, 102, 103) and worlds.HELD_OUT_SEEDS[:3] == (901, 902, 903)
    assert not set(worlds.TUNING_SEEDS) & set(worlds.HELD_OUT_SEEDS)


def test_evaluate_worlds_reports_both_deployments_and_bands(tmp_path: Path, monkeypatch, capsys) -> None:
    """Two small worlds, the real engine, one engine and three partitions, no baselines."""
    parser = argparse.ArgumentParser()
    evaluate_cli.register(parser.add_subparsers())
    args = parser.parse_args(["evaluate", "--worlds", "2", "--principals", "60", "--days", "14",
                              "--partitions", "3", "--no-baselines", "--output", str(tmp_path)])
    assert args.func(args) == 0
    payload = orjson.loads((tmp_path / "evaluation.json").read_bytes())
    assert payload["seeds"] == [101, 102]
    results = payload["results"]
    assert set(results) == {"privwatch", "privwatch, 3 partitions"}
    one = results["privwatch"]
    assert one["incidents"] >= 20 and 0 < one["recall"] <= 1 and one["recall_ci"][0] <= one["recall"]
    assert set(one["recall_by_band"]) <= {"blatant", "moderate", "subtle"}
    assert set(one["level_shares"]) == {"critical", "high", "medium"}
    printed = capsys.readouterr().out
    assert "recall by intensity band" in printed and "privwatch, 3 partitions" in printed
    page = (tmp_path / "evaluation.html").read_text()
    assert page.count("<svg") == 3 and "Severity of pages" in page
    assert text_report(payload).startswith("2 random worlds")
