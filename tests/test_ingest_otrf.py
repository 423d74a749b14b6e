"""OTRF's S3 exfiltration after two weeks of CloudTrail background of the same account: the attacker
(the instance role's stolen credentials, used from a laptop) pages; the background alone pages nothing."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
from otrf_background import ROLE_ARN, background

from detectors.engine import Engine, EngineConfig
from stream.enrich.catalog import Catalog, Rule
from stream.enrich.enricher import Enricher
from stream.ingest.pipeline import Pipeline
from stream.ingest.readers import records
from stream.replay.replay import replay_lines

OTRF = (Path(__file__).parent / "fixtures" / "ingest" / "cloudtrail"
        / "otrf-ec2_proxy_s3_exfiltration_2020-09-14011940.json.gz")
CATALOG = Catalog([Rule(match="arn:aws:s3:::mordors3stack-s3bucket-*", sensitivity="restricted",
                        categories=["pii.financial"])])
PAGING = {"medium", "high", "critical"}


def _events(raw: list) -> list[bytes]:
    pipeline = Pipeline("cloudtrail", Enricher(catalog=lambda: CATALOG, resolve=True))
    out = [value for record in raw for _, _, value in pipeline.run(record).events]
    return sorted(out, key=lambda v: (orjson.loads(v)["ts"], orjson.loads(v)["event_id"]))


def _pages(lines: list[bytes]) -> list[dict]:
    return [a for a in replay_lines(lines, Engine(EngineConfig())).alerts if a["level"] in PAGING]


def test_background_alone_pages_nothing():
    assert _pages(_events(background())) == []


def test_the_attacker_pages_after_two_weeks_of_background():
    attack = [r for _, r in records(gzip.decompress(OTRF.read_bytes()))]
    attack_ids = {f"ct:{r['eventID']}" for r in attack}
    pages = _pages(_events(background() + attack))
    assert pages, "the stolen-credential reads should page"
    assert {a["principal_id"] for a in pages} == {ROLE_ARN}
    assert all(set(a["evidence_event_ids"]) <= attack_ids for a in pages)
    # the role's credentials used from a laptop (service_misuse) on a bucket the role never read
    # (novelty): both page on the first stolen read
    misuse = [a for a in pages if a["detector"] == "service_misuse"]
    assert misuse and misuse[0]["ts"] == pages[0]["ts"], pages
    assert any("Darwin" in reason for reason in misuse[0]["reasons"])
