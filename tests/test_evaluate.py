"""Evaluation: scoring on hand-made alerts and labels with known answers, baselines, reports."""

from __future__ import annotations

import argparse
import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from stream.evaluate import Label, StreamStats, evaluate_dir, score
from stream.evaluate import cli as evaluate_cli
from stream.evaluate.baselines import features, river_hst, static_rules
from stream.evaluate.report import text_report
from stream.simulate.generator import simulate
from stream.simulate.output import meta, write_outputs

T0 = datetime(2026, 10, 1, tzinfo=UTC)


def at(day: int, hour: float = 0.0) -> str:
    return (T0 + timedelta(days=day, hours=hour)).isoformat().replace("+00:00", "Z")


def label(label_id: str, kind: str, who: str, start: str, end: str, what: str = "incident") -> Label:
    return Label.from_dict({"label_id": label_id, "label": what, "kind": kind, "principal_ids": [who],
                            "start": start, "end": end})


def alert(who: str, ts: str, level: str = "high", related: tuple[str, ...] = ()) -> dict:
    return {"principal_id": who, "related_principal_ids": list(related), "ts": ts, "level": level}


LABELS = [
    label("L1", "bulk_export", "u-1", at(8, 10), at(8, 10.5)),
    label("L2", "snooping", "u-2", at(9, 9), at(9, 12)),
    label("L3", "account_takeover", "u-3", at(8, 12), at(8, 13)),
    label("L4", "travel", "u-4", at(10), at(12), what="benign"),
]
ALERTS = [
    alert("u-1", at(8, 10 + 10 / 60)),  # true, 10 min after L1 starts
    alert("u-1", at(9, 9), "critical"),  # true (within end + 24 h), not a new detection
    alert("u-9", at(9, 9 - 4 / 60), "medium", related=("u-2",)),  # true via related, 4 min early: delay 0
    alert("u-4", at(11)),  # false: a benign travel shift, after the warm-up week
    alert("u-5", at(3)),  # false, unlabelled, before the warm-up week ends: not in false pages/1k
    alert("u-3", at(10), "low"),  # not a page
    alert("u-3", at(8, 9)),  # false: three hours before L3 starts
]
STATS = StreamStats(start=T0.timestamp(), end=(T0 + timedelta(days=14)).timestamp(), active_principals=10)


def test_scores_on_hand_made_alerts():
    s = score(ALERTS, LABELS, STATS)
    assert (s["incidents"], s["detected"], s["paging_alerts"], s["true_pages"]) == (3, 2, 6, 3)
    assert s["recall"] == pytest.approx(2 / 3, abs=1e-4)
    assert s["precision"] == 0.5
    assert s["principal_days"] == 70.0
    assert s["false_pages_after_warmup"] == 2
    assert s["false_pages_per_1k_principal_days"] == pytest.approx(1000 * 2 / 70, abs=1e-3)
    assert s["delay_minutes"] == {"median": 5.0, "p90": 9.0}
    assert s["recall_by_kind"]["account_takeover"]["recall"] == 0.0
    assert s["recall_by_kind"]["bulk_export"] == {"incidents": 1, "detected": 1, "recall": 1.0}
    assert s["false_pages_by_benign_kind"] == {"travel": 1, "unlabelled": 2}
    assert s["detected_label_ids"] == ["L1", "L2"]
    assert s["pages_by_detector"] == {"-": {"true": 3, "false": 3}}


def test_no_alerts_scores_zero_recall_and_no_precision():
    s = score([], LABELS, STATS)
    assert (s["recall"], s["precision"], s["false_pages_per_1k_principal_days"]) == (0.0, None, 0.0)
    assert s["delay_minutes"] == {"median": None, "p90": None}


def test_stream_stats_count_principals_active_after_the_first_week():
    events = [{"type": "access", "ts": at(0), "principal": {"id": "u-1"}},
              {"type": "access", "ts": at(8), "principal": {"id": "u-2"}},
              {"type": "permission", "ts": at(9), "actor": {"id": "u-3"}, "target": {"id": "u-2"}},
              {"type": "access", "ts": at(10), "principal": {"id": "u-4"}}]
    stats = StreamStats.from_events(events)
    assert stats.active_principals == 3 and stats.principal_days == 3 * 3


def _access(ts: str, who: str = "u-1", **kw) -> dict:
    e = {"type": "access", "event_id": f"e-{ts}-{who}-{kw.get('action', 'read')}", "ts": ts,
         "principal": {"id": who, "kind": kw.pop("kind", "human")}, "action": "read",
         "resource": {"id": "t", "sensitivity": kw.pop("sensitivity", "internal")}, "records": 1,
         "bytes": 100, "subjects": 0, "outcome": "allowed"}
    e.update(kw)
    return e


def test_static_rules():
    grant = {"type": "permission", "event_id": "p1", "ts": at(8, 11), "actor": {"id": "u-7"},
             "target": {"id": "u-8"}, "change": "grant", "permission": "role:dba", "privileged": True,
             "outcome": "allowed", "ticket": None}
    events = [
        _access(at(8, 9), action="export", records=20_000),
        _access(at(8, 9.1), action="export", records=30_000),  # same rule within the hour: cooled down
        _access(at(8, 9), "svc-a", kind="service", action="export", records=50_000),  # allow-listed
        *[_access(at(8, 10 + i / 60), "u-2", outcome="denied") for i in range(5)],
        _access(at(9, 2), "u-3", sensitivity="restricted"),
        _access(at(9, 9), "u-4", sensitivity="restricted"),
        grant,
        dict(grant, event_id="p2", ticket="CHG-1", target={"id": "u-9"}),
    ]
    alerts = static_rules(events)
    assert [(a["detector"], a["principal_id"]) for a in alerts] == [
        ("static_big_export", "u-1"), ("static_denied_burst", "u-2"), ("static_night_restricted", "u-3"),
        ("static_privileged_grant", "u-8")]
    assert alerts[-1]["related_principal_ids"] == ["u-7"]
    assert {a["level"] for a in alerts} == {"high"}


def test_river_hst_pages_on_about_the_top_fifth_of_a_percent():
    rng = random.Random(0)
    events = [_access(at(d // 200, rng.uniform(8, 18)), f"u-{d % 7}", records=(n := rng.randint(1, 50)),
                      bytes=n * rng.randint(200, 400), action=rng.choice(["read", "query", "export"]),
                      sensitivity=rng.choice(["internal", "confidential", "restricted"]))
              for d in range(2500)]
    alerts = river_hst(events)
    assert len(alerts) <= 25  # 0.2 % of 1,500 scored events is 3; the running quantile is rough early on
    assert all(a["level"] == "high" and a["detector"] == "river_hst" for a in alerts)
    assert all(a["alert_id"].endswith(a["evidence_event_ids"][0]) for a in alerts)


def test_baseline_features():
    x = features(_access(at(5, 2.5), action="export", records=99, outcome="denied",
                         sensitivity="restricted"), datetime(2026, 10, 6, 2, 30, tzinfo=UTC))
    assert x["hour"] == 2.5 and x["is_export"] == 1.0 and x["is_denied"] == 1.0
    assert x["sensitivity"] == 3.0 and x["log_records"] == pytest.approx(math.log(100))


@dataclass
class FakeResult:
    alerts: list[dict] = field(default_factory=list)
    rejected: int = 0


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sim")
    events, labels = simulate(seed=4, principals=20, days=9, incidents=10, baseline_days=4)
    write_outputs(out, events, labels, meta(4, 20, 9, "2026-10-01", 4, events, labels))
    return out


def perfect_replay(directory: Path):
    """A stand-in engine that pages exactly on the first event of every labelled incident."""
    labels = [orjson.loads(line) for line in (directory / "labels.jsonl").read_bytes().splitlines()]
    first = {lab["event_ids"][0]: lab for lab in labels if lab["label"] == "incident"}

    def replay(lines, route=None):  # one engine or the partitions: the same stand-in
        alerts = []
        for line in lines:
            e = orjson.loads(line)
            if e["event_id"] in first:
                who = e["principal"]["id"] if e["type"] == "access" else e["target"]["id"]
                alerts.append({"alert_id": f"x:{e['event_id']}", "ts": e["ts"], "detector": "fake",
                               "principal_id": who, "severity": 90.0, "level": "critical",
                               "related_principal_ids": first[e["event_id"]]["principal_ids"]})
        return FakeResult(alerts)

    return replay


@pytest.mark.parametrize("partitions", [None, 3])
def test_evaluate_dir_with_injected_replay(sim_dir: Path, partitions):
    payload = evaluate_dir(sim_dir, replay=perfect_replay(sim_dir), baselines=False, partitions=partitions,
                           out=None)
    result = payload["results"]["privwatch"]
    assert result["recall"] == 1.0 and result["precision"] == 1.0
    assert result["delay_minutes"]["median"] == 0.0
    assert orjson.loads((sim_dir / "evaluation.json").read_bytes())["results"]["privwatch"] == result
    page = (sim_dir / "evaluation.html").read_text()
    assert "<svg" in page and "bulk_export" in page and "http" not in page.replace("http://www.w3.org", "")


def test_evaluate_cli_with_baselines(sim_dir: Path, monkeypatch, capsys):
    from stream.evaluate import runner

    monkeypatch.setattr(runner, "default_replay", lambda: perfect_replay(sim_dir))
    parser = argparse.ArgumentParser()
    evaluate_cli.register(parser.add_subparsers())
    args = parser.parse_args(["evaluate", str(sim_dir)])
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    for row in ("privwatch", "river-hst baseline", "static-rules baseline", "snooping"):
        assert row in printed
    assert "<svg" in (sim_dir / "evaluation.html").read_text()


def test_text_report_lists_systems_and_kinds():
    text = text_report({"privwatch": score(ALERTS, LABELS, STATS)})
    assert "privwatch" in text and "account_takeover" in text and "0.500" in text
