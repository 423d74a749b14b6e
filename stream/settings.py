"""Typed settings: flags win, then ``PRIVWATCH_*`` environment variables, then the config file
(TOML), then defaults. Unknown keys are rejected and every error is reported at start-up."""

from __future__ import annotations

import argparse
import os
import tomllib
from collections.abc import Mapping
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from stream.errors import ConfigError

ENV_PREFIX = "PRIVWATCH_"


class Settings(BaseModel):
    """Everything ``privwatch run`` can be told. Secrets are ``SecretStr`` (hidden in ``repr``).

    >>> s = Settings(sasl_plain_password="hunter2")
    >>> "hunter2" in repr(s)
    False
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    # -- Kafka -----------------------------------------------------------------------------------
    bootstrap_servers: str = Field("127.0.0.1:9092", description="Kafka brokers to start from, HOST:PORT[,...]")
    group_id: str = Field("privwatch", description="consumer group of the service's instances")
    client_id: str = Field("privwatch", description="client id the brokers see (logs, quotas)")
    access_topic: str = Field("privwatch.access-events", description="input: access events, keyed by principal.id")
    permission_topic: str = Field("privwatch.permission-events",
                                  description="input: permission events, keyed by target.id (same partition count)")
    alerts_topic: str = Field("privwatch.alerts", description="output: alerts, keyed by alert_id")
    dead_letter_topic: str = Field("privwatch.dead-letter",
                                   description="output: input records that could not be used, with the reason")
    feedback_topic: str = Field("privwatch.feedback", description="input: analysts' verdicts on alerts")
    state_topic: str = Field("privwatch.state", description="compacted topic of the detectors' signed snapshots")
    auto_offset_reset: Literal["earliest", "latest"] = Field(
        "earliest", description="where a group with no committed offsets starts reading")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="how clients talk to the brokers")
    sasl_mechanism: str | None = Field(None, description="SASL mechanism, e.g. PLAIN or SCRAM-SHA-512")
    sasl_plain_username: str | None = Field(None, description="SASL user name")
    sasl_plain_password: SecretStr | None = Field(None, description="SASL password (secret: prefer the environment)")
    ssl_cafile: str | None = Field(None, description="CA certificate file (PEM) to verify the brokers")
    ssl_certfile: str | None = Field(None, description="client certificate file (PEM) for mutual TLS")
    ssl_keyfile: str | None = Field(None, description="client private key file (PEM) for mutual TLS")
    # -- the loop ----------------------------------------------------------------------------------
    max_poll_records: int = Field(2000, ge=1, le=100_000, description="records handled per poll at most")
    poll_timeout_ms: int = Field(200, ge=1, le=60_000, description="how long a poll waits for records")
    fetch_min_bytes: int = Field(256 << 10, ge=1, le=8 << 20,
                                 description="the broker answers an input fetch once this much is ready "
                                             "(or after fetch_max_wait_ms): fewer, larger fetches cost less CPU")
    fetch_max_wait_ms: int = Field(50, ge=1, le=60_000,
                                   description="longest an input fetch waits for fetch_min_bytes")
    merge_wait_ms: int = Field(500, ge=0, le=60_000,
                               description="longest a record waits for its partition's other input topic when "
                                           "that topic's lag is not known yet (event-time merge)")
    heap_keep_mb: int = Field(128, ge=0, le=2047,  # mallopt takes a C int of bytes
                              description="freed heap (MiB) kept for the next fetches instead of returned to the "
                                          "kernel; 0 keeps the C library's defaults")
    commit_interval_ms: int = Field(1000, ge=0, le=600_000, description="how often offsets are committed")
    cooldown_s: float = Field(3600.0, ge=0.0,
                              description="after a page, the same detector stays quiet for the principal this long")
    catalog_file: str | None = Field(None, description="JSON data catalog: sensitivity and categories of resources")
    # -- state -------------------------------------------------------------------------------------
    state_key: SecretStr | None = Field(None, description="key (>= 32 bytes) signing state snapshots; "
                                                          "none: no durable state, every restart starts cold")
    snapshot_interval_s: float = Field(30.0, ge=0.0, description="how often changed partitions are snapshotted")
    snapshot_in_background: bool = Field(True, description="encode periodic snapshots in a forked child "
                                                           "(copy-on-write) instead of stalling the loop")
    # -- operations --------------------------------------------------------------------------------
    metrics_host: str = Field("0.0.0.0", description="address of the /metrics, /healthz and /readyz endpoint")
    metrics_port: int = Field(9464, ge=0, le=65535, description="port of that endpoint (0: any free port)")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="log level")
    # -- paging ------------------------------------------------------------------------------------
    alertmanager_url: str | None = Field(None, description="Alertmanager base URL; none: no paging sink")
    alertmanager_resend_s: float = Field(60.0, gt=0, description="how often open incidents are re-posted")
    alertmanager_queue_size: int = Field(10_000, ge=1, description="incidents waiting to be posted, at most")
    correlation_window_s: float = Field(3600.0, ge=0.0,
                                        description="a principal's pages this close together form one incident")
    evidence_url: str | None = Field(None, description="link template to an incident's evidence ({alert_id}, "
                                                       "{principal_id})")
    runbook_base_url: str = Field("https://github.com/privwatch/privwatch/blob/main/docs/runbooks",
                                  description="where the per-detector runbooks live")

    # -- analyst feedback and triage (issue 33: stream/feedback, stream/triage) ----------------------
    analysts_file: str | None = Field(None, description="TOML file of the analysts: names, own principal ids, "
                                                        "Ed25519 public keys by key id, sign-in password hashes "
                                                        "(docs/analyst-guide.md); none: every verdict is refused")
    alert_id_key: SecretStr | None = Field(None, description="key (>= 32 bytes) of the MAC in alert ids, the same "
                                                             "on every instance; none: verdicts are refused")
    alert_id_key_file: str | None = Field(None, description="file holding alert_id_key (instead of the setting)")
    feedback_max_skew_s: float = Field(300.0, ge=0.0, le=3600.0,
                                       description="a verdict signed further than this from when it reached the "
                                                   "feedback topic is refused (backdated or future)")
    feedback_catch_up_s: float = Field(30.0, ge=0.0, description="longest the start-up reading of the feedback "
                                                                 "topic may take before processing starts")
    analyst_key_file: str | None = Field(None, description="privwatch feedback: the analyst's Ed25519 private "
                                                           "key (PEM); or the PEM itself in PRIVWATCH_ANALYST_KEY")
    analyst_name: str | None = Field(None, description="privwatch feedback: the analyst signing (as in "
                                                       "analysts_file)")
    analyst_key_id: str | None = Field(None, description="privwatch feedback: the id of the analyst's key")
    triage_host: str = Field("127.0.0.1", description="address the triage web app listens on")
    triage_port: int = Field(8080, ge=0, le=65535, description="port of the triage web app (0: any free port)")
    triage_database_url: str = Field("sqlite:///privwatch-triage.sqlite",
                                     description="SQLAlchemy URL of the triage database (SQLite file by default)")
    triage_group_id: str = Field("privwatch-triage", description="consumer group of the triage app on the "
                                                                 "alerts topic")
    triage_session_key: SecretStr | None = Field(None, description="key (>= 32 bytes) signing triage sign-in "
                                                                   "sessions; none: a new one at each start")
    triage_session_key_file: str | None = Field(None, description="file holding triage_session_key")
    triage_url: str | None = Field(None, description="public base URL of the triage app, for links printed by "
                                                     "the CLI (set evidence_url to TRIAGE_URL/alerts/{alert_id})")

    def changed(self) -> dict[str, Any]:
        """The settings that differ from their defaults (secrets hidden), for the start-up log line."""
        return {k: v for k, v in self if v != Settings.model_fields[k].default}

    def kafka_security(self) -> dict[str, Any]:
        """Keyword arguments for kafka-python clients (security pass-through)."""
        options: dict[str, Any] = {"security_protocol": self.security_protocol}
        for key in ("sasl_mechanism", "sasl_plain_username", "ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            value = getattr(self, key)
            if value is not None:
                options[key] = value
        if self.sasl_plain_password is not None:
            options["sasl_plain_password"] = self.sasl_plain_password.get_secret_value()
        return options


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def describe(name: str) -> str:
    """A setting's help: its meaning, allowed values, default and environment variable."""
    info = Settings.model_fields[name]
    allowed = get_args(info.annotation) if get_origin(info.annotation) is Literal else ()
    parts = [info.description or name.replace("_", " ")]
    if allowed:
        parts.append("one of " + ", ".join(allowed))
    default = "none" if info.default is None else repr(info.default) if isinstance(info.default, str) else info.default
    parts.append(f"default {default}; env {ENV_PREFIX + name.upper()}")
    return "; ".join(parts)


def markdown_table() -> str:
    """The settings as the Markdown table of ``docs/configuration.md`` (a test keeps them in step:
    ``python -c 'from stream.settings import markdown_table; print(markdown_table())'``)."""
    rows = ["| setting | environment | default | meaning |", "|---|---|---|---|"]
    for name, info in Settings.model_fields.items():
        default = "unset" if info.default is None else f"`{info.default}`"
        allowed = get_args(info.annotation) if get_origin(info.annotation) is Literal else ()
        meaning = (info.description or "").replace("|", "\\|") + (f" ({', '.join(allowed)})" if allowed else "")
        rows.append(f"| `{name}` | `{ENV_PREFIX + name.upper()}` | {default} | {meaning} |")
    return "\n".join(rows)


def add_flags(parser: argparse.ArgumentParser) -> None:
    """Add ``--config`` and one flag per setting (default None, so unset flags do not override);
    a switch (``--x``/``--no-x``) for each true/false setting."""
    parser.add_argument("--config", metavar="FILE", help="TOML config file (keys as the flags, with _)")
    for name, info in Settings.model_fields.items():
        if info.annotation is bool:
            parser.add_argument(_flag(name), dest=name, default=None, action=argparse.BooleanOptionalAction,
                                help=describe(name))
        else:
            parser.add_argument(_flag(name), dest=name, default=None, metavar=name.split("_")[-1].upper(),
                                help=describe(name))


def _from_env(environ: Mapping[str, str]) -> dict[str, str]:
    known = {ENV_PREFIX + name.upper(): name for name in Settings.model_fields}
    ignored = (ENV_PREFIX + "CONFIG", ENV_PREFIX + "TEST_")  # the config path itself; test-suite knobs
    not_settings = {ENV_PREFIX + "PURE",  # read at import by detectors/native.py: run the pure-Python build
                    ENV_PREFIX + "ANALYST_KEY"}  # privwatch feedback's private key: never a flag, so no setting
    unknown = [k for k in environ
               if k.startswith(ENV_PREFIX) and k not in known and k not in not_settings and not k.startswith(ignored)]
    if unknown:
        raise ConfigError(f"unknown environment variable(s): {', '.join(sorted(unknown))}")
    return {known[k]: v for k, v in environ.items() if k in known}


def _from_file(path: str | None) -> dict[str, Any]:
    if not path:
        return {}
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    return data.get("privwatch", data)


def load_settings(
    flags: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Merge the sources (flags > env > file > defaults) and validate; raise ConfigError on any problem."""
    flags = dict(flags or {})
    environ = os.environ if environ is None else environ
    config_file = flags.pop("config", None) or environ.get(ENV_PREFIX + "CONFIG")
    merged: dict[str, Any] = _from_file(config_file)
    merged.update(_from_env(environ))
    merged.update({k: v for k, v in flags.items() if v is not None and k in Settings.model_fields})
    try:
        return Settings(**merged)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors(include_url=False)
        )
        raise ConfigError(f"invalid settings: {problems}") from None
