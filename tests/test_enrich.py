"""The directory, the catalog and the enricher: aliases to one id, fill without overwriting, admin status
known or unknown, reloads that keep the last good version."""

from __future__ import annotations

import os

import pytest

from stream.enrich.catalog import Catalog, Rule
from stream.enrich.directory import Directory, load_directory, parse_people
from stream.enrich.enricher import Enricher
from stream.enrich.sources import FileSource
from stream.errors import InputError

CSV = b"""id,aliases,kind,department,role,admin,groups,start
u-1,alice@example.com;arn:aws:iam::1:user/alice;00u1,human,finance,analyst,,finance-readers,2024-01-02
u-2,bob@example.com,human,it,engineer,true,,
svc-etl,arn:aws:iam::1:role/etl,service,data,,,,
"""


def test_directory_formats_parse_alike(tmp_path):
    people = parse_people(CSV, "p.csv")
    as_json = b"[" + b",".join(p.model_dump_json(exclude_none=True).encode() for p in people) + b"]"
    assert parse_people(as_json, "p.json") == people
    assert parse_people(as_json[1:-1].replace(b"},{", b"}\n{"), "p.jsonl") == people
    assert people[0].groups == ["finance-readers"] and people[1].admin is True and people[0].admin is None
    with pytest.raises(InputError, match="record 1: kind"):
        parse_people(b'[{"id": "x", "kind": "robot"}]', "bad.json")


def test_ingest_resolves_aliases_and_fills_only_what_is_missing():
    directory = Directory(parse_people(CSV, "p.csv"))
    gaps: list[str] = []
    enrich = Enricher(lambda: directory, admin_roles=["admin"], admin_groups=["finance-readers"], resolve=True,
                      on_gap=gaps.append)
    doc = {"type": "permission", "actor": {"id": "arn:aws:iam::1:user/alice", "aliases": ["00u1"]},
           "target": {"id": "carol@example.com", "department": "sales"}, "permission": "p"}
    enrich(doc)
    assert doc["actor"] == {"id": "u-1", "aliases": ["00u1"], "kind": "human", "department": "finance",
                            "role": "analyst", "admin": True}  # admin through its group
    assert doc["target"] == {"id": "carol@example.com", "department": "sales"}
    assert gaps == ["not_in_directory"]


def test_service_fills_but_never_rekeys_and_counts_unknown_admin_status():
    directory = Directory(parse_people(CSV, "p.csv"))
    gaps: list[str] = []
    enrich = Enricher(lambda: directory, resolve=False, on_gap=gaps.append)
    doc = {"type": "permission", "actor": {"id": "alice@example.com"}, "target": {"id": "nobody"}}
    enrich(doc)
    assert doc["actor"]["id"] == "alice@example.com" and doc["actor"]["department"] == "finance"
    assert "admin" not in doc["actor"], "no flag and no admin roles configured: unknown, not False"
    assert sorted(gaps) == ["actor_admin_unknown", "not_in_directory"]


def test_catalog_fills_missing_classification_first_match_wins():
    catalog = Catalog([Rule(match="bq:*.hr_*", sensitivity="restricted", categories=["pii.hr"]),
                       Rule(prefix="bq:", sensitivity="internal")])
    enrich = Enricher(catalog=lambda: catalog)
    doc = {"type": "access", "resource": {"id": "bq:p.people.hr_salaries"}}
    enrich(doc)
    assert doc["resource"] == {"id": "bq:p.people.hr_salaries", "sensitivity": "restricted", "categories": ["pii.hr"]}
    kept = {"type": "access", "resource": {"id": "bq:p.x.y", "sensitivity": "public", "categories": ["a"]}}
    enrich(kept)
    assert kept["resource"]["sensitivity"] == "public"


def test_a_bad_reload_keeps_the_last_good_directory(tmp_path):
    path = tmp_path / "people.csv"
    path.write_bytes(CSV)
    outcomes: list[str] = []
    source = FileSource(str(path), load_directory, interval_s=0.0, on_reload=outcomes.append)
    path.write_bytes(b'id,kind\nx,robot\n')
    os.utime(path, (1, 1))
    assert source.refresh() is False and len(source.current) == 3 and outcomes == ["failed"]
    path.write_bytes(CSV + b"u-9,,human,,,,,\n")
    assert source.refresh() is True and len(source.current) == 4 and outcomes == ["failed", "ok"]
