"""Ingest throughput: ``python -m stream.ingest.bench [--records N]``.

CloudTrail files as CloudTrail delivers them (gzipped ``{"Records": [...]}`` files of ``--per-file``
records; the records are the simulator's, :mod:`stream.simulate.cloudtrail`) are read twice: once with a
bare JSON decode (gunzip and ``orjson.loads``: the floor any reader pays), once through the whole ingest
pipeline (mapping, directory, catalog, contract validation, encoding). Records per second are per CPU
second of this process (``time.process_time``), so they are per core.
"""

from __future__ import annotations

import argparse
import gzip
import tempfile
import time
from pathlib import Path

import orjson

from stream.enrich.catalog import Catalog, Rule
from stream.enrich.directory import Directory, Person
from stream.enrich.enricher import Enricher
from stream.ingest.pipeline import Pipeline
from stream.ingest.readers import read_bytes, records
from stream.simulate.cloudtrail import PRIVILEGED_POLICIES, catalog, directory, render
from stream.simulate.generator import simulate


def make_files(out: Path, n: int, per_file: int, seed: int = 1) -> tuple[list[Path], Directory, Catalog]:
    """``n`` simulated CloudTrail records in gzipped files of ``per_file``, and their directory and catalog."""
    principals = 200
    days = max(2, n // (principals * 26) + 2)
    events, _ = simulate(seed, principals, days, baseline_days=1)
    events = events[:n]
    paths = []
    for i in range(0, len(events), per_file):
        path = out / f"ct-{i // per_file:05d}.json.gz"
        body = orjson.dumps({"Records": [render(e) for e in events[i:i + per_file]]})
        path.write_bytes(gzip.compress(body, compresslevel=6, mtime=0))
        paths.append(path)
    people = Directory(Person.model_validate(p) for p in directory(events))
    rules = Catalog(Rule.model_validate(r) for r in catalog(events)["rules"])
    return paths, people, rules


def bare(paths: list[Path]) -> int:
    n = 0
    for path in paths:
        n += len(orjson.loads(gzip.decompress(path.read_bytes()))["Records"])
    return n


def ingest(paths: list[Path], pipeline: Pipeline) -> int:
    n = 0
    for path in paths:
        for _, record in records(read_bytes(str(path))):
            pipeline.run(record)
            n += 1
    return n


def measure(fn, *args) -> tuple[int, float]:  # type: ignore[no-untyped-def]
    began = time.process_time()
    n = fn(*args)
    return n, time.process_time() - began


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stream.ingest.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--per-file", type=int, default=1000, help="records per CloudTrail file")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        paths, people, rules = make_files(Path(tmp), args.records, args.per_file)
        pipeline = Pipeline("cloudtrail", Enricher(lambda: people, lambda: rules, resolve=True), [PRIVILEGED_POLICIES])
        size = sum(p.stat().st_size for p in paths)
        rows = [("bare JSON decode (gunzip + orjson)", *measure(bare, paths)),
                ("privwatch ingest (map, directory, catalog, validate, encode)", *measure(ingest, paths, pipeline))]
    print(f"{len(paths)} CloudTrail files, {size / 1e6:.1f} MB gzipped")
    print(f"{'stage':<62} {'records':>9} {'CPU s':>7} {'records/s per core':>19}")
    for name, n, seconds in rows:
        print(f"{name:<62} {n:>9,} {seconds:>7.2f} {n / max(seconds, 1e-9):>19,.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
