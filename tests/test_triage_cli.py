"""privwatch triage keygen|passwd, privwatch feedback (signing; the key never from a flag), privwatch alerts."""

from __future__ import annotations

import io
import stat

import orjson
import pytest
from factories import T0
from feedback_helpers import ALERT_KEY
from test_triage_app import _alert

from detectors.alerts import alert_id
from stream.cli import main
from stream.feedback.analysts import parse_analysts
from stream.feedback.signing import load_private, private_pem, verify
from stream.triage.schema import connect
from stream.triage.store import TriageStore


def test_keygen_writes_a_private_key_and_prints_a_working_analysts_entry(tmp_path, capfd):
    key_file = tmp_path / "alice.key"
    assert main(["triage", "keygen", "alice", "--out", str(key_file)]) == 0
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    entry = capfd.readouterr().out
    analysts = parse_analysts(entry)
    key_id = analysts.by_name["alice"].key_ids[0]
    from stream.feedback.signing import sign, verdict_record

    record = sign(verdict_record("a:b:c:0123456789abcdef", "benign", "alert", "alice", key_id, T0),
                  load_private(key_file.read_bytes(), "key"))
    assert verify(record, analysts.key("alice", key_id))
    assert main(["triage", "keygen", "alice", "--out", str(key_file)]) == 2  # never overwrites


def test_passwd_hashes_a_password(monkeypatch, capfd):
    from werkzeug.security import check_password_hash

    monkeypatch.setattr("sys.stdin", io.StringIO("correct horse battery\n"))
    assert main(["triage", "passwd"]) == 0
    assert check_password_hash(capfd.readouterr().out.strip(), "correct horse battery")
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["triage", "passwd"]) == 2


def test_feedback_signs_with_the_key_from_a_file_or_the_environment(tmp_path, capfd, monkeypatch):
    from feedback_helpers import ALICE, ANALYSTS_TOML, MALLORY

    (tmp_path / "analysts.toml").write_text(ANALYSTS_TOML)
    (tmp_path / "alice.key").write_bytes(private_pem(ALICE))
    target = alert_id("volume", "u-1", "e1", ALERT_KEY)
    common = ["feedback", target, "--verdict", "benign", "--scope", "resource", "--resource", "t1", "--note", "job",
              "--dry-run", "--analyst-name", "alice", "--analyst-key-id", "alice-1",
              "--analysts-file", str(tmp_path / "analysts.toml")]
    assert main([*common, "--analyst-key-file", str(tmp_path / "alice.key")]) == 0
    record = orjson.loads(capfd.readouterr().out)
    assert (record["scope"], record["resource_id"], record["note"]) == ("resource", "t1", "job")
    assert verify(record, parse_analysts(ANALYSTS_TOML).key("alice", "alice-1"))
    monkeypatch.setenv("PRIVWATCH_ANALYST_KEY", private_pem(ALICE).decode())
    assert main(common) == 0
    monkeypatch.setenv("PRIVWATCH_ANALYST_KEY", private_pem(MALLORY).decode())
    assert main(common) == 2  # not alice's key: said before anything is published
    with pytest.raises(SystemExit):
        main([*common, "--analyst-key", "PEM"])  # no such flag


def test_alerts_list_and_show_from_the_database(tmp_path, capfd):
    url = f"sqlite:///{tmp_path / 't.sqlite'}"
    TriageStore(connect(url)).add_alerts([_alert(1), _alert(2, minutes=10), _alert(3, principal="u-2")])
    assert main(["alerts", "list", "--triage-database-url", url]) == 0
    out = capfd.readouterr().out
    assert out.startswith("open: 2  assigned: 0  closed: 0") and "u-1" in out and "u-2" in out
    assert main(["alerts", "show", _alert(2, minutes=10)["alert_id"], "--triage-database-url", url]) == 0
    shown = capfd.readouterr().out
    assert "exported 1,000 records" in shown and "exported 2,000 records" in shown
    assert main(["alerts", "show", "nothing", "--triage-database-url", url]) == 3
