"""Golden tests of every ingest format on real public records (``tests/fixtures/ingest/``, see its
SOURCES.md): every record becomes contract-valid events (checked against the JSON Schemas) or a skip or
reject with a reason, and ``records = mapped + skipped + rejected``."""

from __future__ import annotations

import copy
import gzip
from pathlib import Path

import orjson
import pytest
from contract_schemas import validator

from stream.enrich.directory import Directory, Person
from stream.enrich.enricher import Enricher
from stream.ingest.files import ingest_files
from stream.ingest.formats import FORMATS
from stream.ingest.pipeline import Pipeline

FIXTURES = Path(__file__).parent / "fixtures" / "ingest"
VALIDATORS = {t: validator(f"{t}-event") for t in ("access", "permission", "authentication")}


def _inputs(fmt: str) -> list[str]:
    return sorted(str(p) for p in (FIXTURES / fmt).iterdir() if not p.name.endswith((".txt", ".md")))


def _ingest(tmp_path, fmt: str, inputs: list[str], pipeline: Pipeline | None = None):
    out = tmp_path / f"{fmt}.jsonl"
    summary = ingest_files(pipeline or Pipeline(fmt), inputs, str(out), str(tmp_path / "rejects.jsonl"))
    events = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    rejects = [orjson.loads(line) for line in (tmp_path / "rejects.jsonl").read_bytes().splitlines()]
    return summary.as_dict(), events, rejects


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_every_record_is_valid_events_or_a_counted_skip_or_reject(tmp_path, fmt):
    summary, events, rejects = _ingest(tmp_path, fmt, _inputs(fmt))
    assert summary["records"] > 0
    skipped, rejected = sum(summary["skipped"].values()), sum(summary["rejected"].values())
    assert summary["records"] == summary["mapped"] + skipped + rejected
    assert sum(summary["events"].values()) == len(events)
    assert len(rejects) == sum(summary["rejected"].values())
    assert all(r["reason"] and r["detail"] for r in rejects)
    for event in events:
        errors = list(VALIDATORS[event["type"]].iter_errors(event))
        assert not errors, (event["event_id"], errors[0].message)
        assert event["provenance"]["format"] == fmt
        assert "aliases" not in (event.get("principal") or event["target"])
    # (ids are not asserted unique: Panther's test records share their source ids between variants)
    assert [e["ts"] for e in events] == sorted(e["ts"] for e in events), "written in event-time order"


def test_mapping_is_deterministic(tmp_path):
    first = _ingest(tmp_path / "a", "cloudtrail", _inputs("cloudtrail")) if (tmp_path / "a").mkdir() is None else None
    second = _ingest(tmp_path / "b", "cloudtrail", _inputs("cloudtrail")) if (tmp_path / "b").mkdir() is None else None
    assert first == second


def test_the_malformed_stratus_file_is_one_counted_reject(tmp_path):
    summary, events, rejects = _ingest(tmp_path, "cloudtrail",
                                       [str(FIXTURES / "cloudtrail" / "stratus-aws.execution.ec2-user-data.json")])
    assert summary == {"records": 1, "mapped": 0, "skipped": {}, "rejected": {"malformed_json": 1}, "events": {}}
    assert rejects[0]["input"].endswith("ec2-user-data.json")


def test_stratus_secrets_retrieval_becomes_reads_of_each_secret(tmp_path):
    path = FIXTURES / "cloudtrail" / "stratus-aws.credential-access.secretsmanager-retrieve-secrets.json"
    summary, events, _ = _ingest(tmp_path, "cloudtrail", [str(path)])
    assert summary["mapped"] == 10 and summary["events"] == {"access": 10}
    assert {e["action"] for e in events} == {"read"} and {e["resource"]["kind"] for e in events} == {"secret"}
    assert len({e["resource"]["id"] for e in events}) == 10


def test_otrf_attacker_is_one_principal_with_its_s3_reads(tmp_path):
    _, events, _ = _ingest(tmp_path, "cloudtrail", [str(next((FIXTURES / "cloudtrail").glob("otrf-*")))])
    s3 = [e for e in events if e["resource"]["id"].startswith("arn:aws:s3:::")]
    assert {e["principal"]["id"] for e in s3} == {
        "arn:aws:iam::123456789123:role/MordorNginxStack-BankingWAFRole-9S3E0UAE1MM0"}
    assert {e["principal"]["kind"] for e in s3} == {"service"}  # instance-profile credentials
    assert sorted((e["action"], e["resource"]["id"]) for e in s3 if e["action"] == "download") == [
        ("download", "arn:aws:s3:::mordors3stack-s3bucket-llp2yingx64a/ring.txt")] * 2
    assert sum(e["action"] == "query" for e in s3) == 7  # ListObjects of the bucket
    assert {e["source"]["user_agent"] for e in s3} == {"[aws-cli/1.18.136 Python/3.8.5 Darwin/19.5.0 botocore/1.17.59]"}


def test_entra_delegated_grant_and_mailbox_read_meet_through_the_directory(tmp_path):
    app_ids = ["0d2f5969-011b-460d-ac74-3291d227d49f", "5a95e683-08ad-424e-a441-1d1aec52c02c"]  # objectId, appId
    directory = Directory([Person(id="simuland-app", kind="service", aliases=app_ids)])
    pipeline = Pipeline("entra", Enricher(lambda: directory, resolve=True))
    _, events, _ = _ingest(tmp_path, "entra", [str(p) for p in (FIXTURES / "entra").glob("otrf-*")], pipeline)
    grant, read = events
    assert (grant["change"], grant["permission"], grant["target"]["id"]) == (
        "grant", "delegated:Microsoft Graph/Mail.ReadWrite", "simuland-app")  # the scope difference only
    assert (read["action"], read["principal"]["id"], read["records"]) == ("read", "simuland-app", 7)
    assert "admin" not in grant["actor"], "no directory record for the actor: its admin status stays unknown"


def test_okta_privileges_come_one_event_each_and_country_names_become_codes(tmp_path):
    _, events, _ = _ingest(tmp_path, "okta", _inputs("okta"))
    grants = [e for e in events if e["type"] == "permission"]
    assert grants and all(e["permission"].startswith("okta:") and "," not in e["permission"] for e in grants)
    countries = {e.get("source", {}).get("country") for e in events} - {None}
    assert countries and all(len(c) == 2 for c in countries)


def test_gcp_set_iam_policy_is_one_event_per_binding_delta(tmp_path):
    _, events, _ = _ingest(tmp_path, "gcp-audit", _inputs("gcp-audit"))
    grants = [e for e in events if e["type"] == "permission"]
    assert grants and all(e["permission"].startswith("roles/") for e in grants)
    assert {e["change"] for e in grants} <= {"grant", "revoke"}
    reads = [e for e in events if e["type"] == "access"]
    assert {e["resource"]["id"].split(":")[0] for e in reads} <= {"gs", "bq", "gcp"}


def _panther(fmt: str) -> list[dict]:
    return [orjson.loads(line) for line in gzip.decompress(
        (FIXTURES / fmt / "panther-rule-tests.jsonl.gz").read_bytes()).splitlines()]


def test_k8s_secret_reads_and_bindings_map_once_timestamped():
    """Panther's EKS test records are stubs without the timestamp every real audit event carries; with
    one added, secret reads and binding creations map."""
    pipeline, mapped = Pipeline("k8s-audit"), []
    for record in _panther("k8s-audit"):
        ref = record.get("objectRef") or {}
        if ref.get("resource") in ("secrets", "clusterrolebindings", "rolebindings") and "verb" in record:
            stamped = copy.deepcopy(record) | {"requestReceivedTimestamp": "2024-05-01T10:00:00.000000Z"}
            mapped += [orjson.loads(v) for _, _, v in pipeline.run(stamped).events]
    reads = [e for e in mapped if e["type"] == "access"]
    grants = [e for e in mapped if e["type"] == "permission"]
    assert reads and all(e["resource"]["id"].startswith("k8s:") for e in reads)
    assert grants and any(e["permission"] == "ClusterRole/cluster-admin" and e["privileged"] for e in grants)
