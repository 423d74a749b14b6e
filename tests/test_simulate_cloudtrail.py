"""``simulate --format cloudtrail -> ingest -> evaluate``: the same world scored straight and through the
adapter agrees (recall and precision within 0.02), and the adapter gives back every projected event."""

from __future__ import annotations

import argparse
from pathlib import Path

import orjson

from stream.enrich.catalog import load_catalog
from stream.enrich.directory import load_directory
from stream.enrich.enricher import Enricher
from stream.evaluate.runner import evaluate_dir
from stream.ingest.files import ingest_files
from stream.ingest.pipeline import Pipeline
from stream.simulate import cli as simulate_cli
from stream.simulate.cloudtrail import PRIVILEGED_POLICIES, projected_world
from stream.simulate.generator import simulate
from stream.simulate.output import write_jsonl

SEED, PRINCIPALS, DAYS, BASELINE = 4, 30, 10, 4


def _simulate_cloudtrail(out: Path) -> None:
    parser = argparse.ArgumentParser()
    simulate_cli.register(parser.add_subparsers())
    args = parser.parse_args(["simulate", "--seed", str(SEED), "--principals", str(PRINCIPALS), "--days", str(DAYS),
                              "--baseline-days", str(BASELINE), "--format", "cloudtrail", "--output", str(out)])
    assert args.func(args) == 0


def test_same_world_scored_straight_and_through_ingest_agrees(tmp_path):
    through = tmp_path / "through"
    _simulate_cloudtrail(through)
    directory, catalog = load_directory(str(through / "directory.jsonl")), load_catalog(str(through / "catalog.json"))
    pipeline = Pipeline("cloudtrail", Enricher(lambda: directory, lambda: catalog, resolve=True), [PRIVILEGED_POLICIES])
    summary = ingest_files(pipeline, [str(through / "cloudtrail.jsonl")], str(through / "events.jsonl"))
    assert summary.records == summary.mapped > 0

    straight = tmp_path / "straight"
    straight.mkdir()
    events, labels = simulate(SEED, PRINCIPALS, DAYS, None, BASELINE)
    projected, relabelled = projected_world(events, labels)
    write_jsonl(straight / "events.jsonl", projected)
    write_jsonl(straight / "labels.jsonl", relabelled)
    (straight / "meta.json").write_bytes((through / "meta.json").read_bytes())
    assert [orjson.loads(line) for line in (through / "events.jsonl").read_bytes().splitlines()] == projected
    assert (through / "labels.jsonl").read_bytes() == (straight / "labels.jsonl").read_bytes()

    a = evaluate_dir(straight, baselines=False, out=None)["results"]["privwatch"]
    b = evaluate_dir(through, baselines=False, out=None)["results"]["privwatch"]
    assert abs((a["recall"] or 0) - (b["recall"] or 0)) <= 0.02
    assert abs((a["precision"] or 0) - (b["precision"] or 0)) <= 0.02
