"""``privwatch ingest`` in file mode: outputs, summary, exit codes (0 read, 2 usage, 3 input)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from stream.cli import main

FIXTURES = Path(__file__).parent / "fixtures" / "ingest"
OTRF = str(FIXTURES / "cloudtrail" / "otrf-ec2_proxy_s3_exfiltration_2020-09-14011940.json.gz")


def test_file_mode_writes_events_rejects_and_summary(tmp_path, capfd):
    malformed = str(FIXTURES / "cloudtrail" / "stratus-aws.execution.ec2-user-data.json")
    out, rejects, summary = tmp_path / "e.jsonl", tmp_path / "r.jsonl", tmp_path / "s.json"
    code = main(["ingest", "--format", "cloudtrail", OTRF, malformed, "--output", str(out), "--rejects", str(rejects),
                 "--summary", str(summary)])
    assert code == 0
    s = orjson.loads(summary.read_bytes())
    assert s["records"] == 104 and s["rejected"] == {"malformed_json": 1} and s["events"] == {"access": 9}
    assert len(out.read_bytes().splitlines()) == 9 and len(rejects.read_bytes().splitlines()) == 1
    assert "104 records: 9 mapped" in capfd.readouterr().err


def test_directory_and_catalog_apply(tmp_path):
    people = tmp_path / "people.csv"
    people.write_text("id,aliases,kind,department,role\n"
                      "waf-proxy,arn:aws:iam::123456789123:role/MordorNginxStack-BankingWAFRole-9S3E0UAE1MM0,"
                      "service,web,proxy\n")
    rules = tmp_path / "catalog.json"
    rules.write_text('{"rules": [{"match": "arn:aws:s3:::mordors3stack-*", "sensitivity": "restricted"}]}')
    out = tmp_path / "e.jsonl"
    assert main(["ingest", "--format", "cloudtrail", "--directory", str(people), "--catalog", str(rules), OTRF,
                 "--output", str(out)]) == 0
    events = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert {e["principal"]["id"] for e in events} == {"waf-proxy"}
    assert {(e["principal"]["department"], e["resource"]["sensitivity"]) for e in events} == {("web", "restricted")}


@pytest.mark.parametrize(("argv", "code", "message"), [
    (["ingest", "--format", "cloudtrail", "missing.json", "--output", "x.jsonl"], 3, "no such input file"),
    (["ingest", "--format", "cloudtrail", OTRF], 2, "file mode needs INPUT files and --output"),
    (["ingest", OTRF, "--output", "x.jsonl"], 2, "give --format"),
    (["ingest", "--format", "cloudtrail", "--directory", "nobody.csv", OTRF, "--output", "x.jsonl"], 3,
     "cannot read directory"),
])
def test_usage_and_input_errors_exit_with_their_codes(tmp_path, monkeypatch, capfd, argv, code, message):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == code
    assert message in capfd.readouterr().err


def test_unknown_format_is_a_usage_error(capfd):
    with pytest.raises(SystemExit) as exit_:
        main(["ingest", "--format", "syslog", OTRF, "--output", "x"])
    assert exit_.value.code == 2
