from __future__ import annotations

import pytest

from stream.config import load_settings
from stream.errors import ConfigError
from stream.settings import Settings


def test_precedence_flags_env_file_defaults(tmp_path):
    cfg = tmp_path / "privwatch.toml"
    cfg.write_text('group_id = "from-file"\nclient_id = "file-client"\nmetrics_port = 1111\n')
    env = {"PRIVWATCH_CONFIG": str(cfg), "PRIVWATCH_GROUP_ID": "from-env", "PRIVWATCH_METRICS_PORT": "2222"}
    s = load_settings({"metrics_port": "3333"}, env)
    assert (s.metrics_port, s.group_id, s.client_id, s.access_topic) == (
        3333, "from-env", "file-client", "privwatch.access-events")


def test_unknown_keys_are_rejected(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("gruop_id = 'typo'\n")
    with pytest.raises(ConfigError, match="gruop_id"):
        load_settings({"config": str(cfg)}, {})
    with pytest.raises(ConfigError, match="PRIVWATCH_BOOTSTRAP"):
        load_settings({}, {"PRIVWATCH_BOOTSTRAP": "x"})
    with pytest.raises(ConfigError, match="PRIVWATCH_PURE_"):
        load_settings({}, {"PRIVWATCH_PURE_": "1"})


def test_the_pure_python_switch_is_not_a_setting():
    """PRIVWATCH_PURE=1 (detectors/native.py) must not stop the service at start-up."""
    assert load_settings({}, {"PRIVWATCH_PURE": "1"}) == load_settings({}, {})


def test_invalid_values_are_reported_clearly():
    with pytest.raises(ConfigError, match="auto_offset_reset"):
        load_settings({"auto_offset_reset": "middle"}, {})


def test_secrets_are_hidden_but_passed_to_kafka():
    s = Settings(security_protocol="SASL_SSL", sasl_mechanism="PLAIN", sasl_plain_username="svc",
                 sasl_plain_password="s3cret", state_key="k3y")
    assert "s3cret" not in repr(s) and "k3y" not in repr(s) and "s3cret" not in str(s.model_dump())
    assert s.kafka_security()["sasl_plain_password"] == "s3cret"


def test_missing_config_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings({"config": str(tmp_path / "nope.toml")}, {})


def test_the_configuration_page_documents_every_setting():
    from pathlib import Path

    from stream.config import markdown_table

    page = (Path(__file__).resolve().parents[1] / "docs" / "configuration.md").read_text()
    assert markdown_table() in page, "docs/configuration.md's table is out of date: regenerate it " \
        "with python -c 'from stream.config import markdown_table; print(markdown_table())'"


def test_catalog_is_checked_when_loaded(tmp_path):
    from stream.enrich.catalog import load_catalog

    good = tmp_path / "catalog.json"
    good.write_text('{"hr.salaries": {"sensitivity": "restricted", "categories": ["pii.hr"]}, "t.x": {}}')
    catalog = load_catalog(str(good))
    assert (catalog.lookup("hr.salaries"), catalog.lookup("t.x")) == (("restricted", ("pii.hr",)), (None, ()))
    rules = tmp_path / "rules.json"
    rules.write_text('{"rules": [{"match": "bq:*.hr_*", "sensitivity": "restricted"}, {"prefix": "bq:"}]}')
    assert load_catalog(str(rules)).lookup("bq:p.d.hr_pay") == ("restricted", ())
    wrong = [('{"t": {"sensitivity": 3}}', "sensitivity"), ('{"t": {"categories": "pii"}}', "categories"),
             ("[1]", "rule"), ('{"rules": [{"match": "a", "prefix": "b"}]}', "rule"), ("{not json", "JSON")]
    for body, where in wrong:
        bad = tmp_path / "bad.json"
        bad.write_text(body)
        with pytest.raises(ConfigError, match=where):
            load_catalog(str(bad))
    with pytest.raises(ConfigError, match="cannot read catalog"):
        load_catalog(str(tmp_path / "missing.json"))
