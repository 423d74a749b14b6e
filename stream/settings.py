"""Typed settings: every setting of ``privwatch run`` (:class:`Settings`) and the Kafka part every
command shares (:class:`KafkaSettings`), validated at start-up: unknown keys rejected, units in
names, secrets hidden in ``repr``. Where their values come from is :mod:`stream.config`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

ENV_PREFIX = "PRIVWATCH_"


def _comma_list(value: Any) -> Any:
    """``"a,b"`` (a flag or an environment variable) -> ``["a", "b"]``; lists pass."""
    return [p.strip() for p in value.split(",") if p.strip()] if isinstance(value, str) else value


Names = Annotated[list[str], BeforeValidator(_comma_list)]


class KafkaSettings(BaseModel):
    """What every privwatch process that talks to Kafka is told: where the brokers are and how to reach
    them securely. Secrets are ``SecretStr`` (hidden in ``repr``); each has an ``X_file`` setting read
    into it, and no command-line flag (``ps`` shows flags)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bootstrap_servers: str = Field("127.0.0.1:9092", description="Kafka brokers to start from, HOST:PORT[,...]")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="how clients talk to the brokers")
    sasl_mechanism: str | None = Field(None, description="SASL mechanism, e.g. PLAIN or SCRAM-SHA-512")
    sasl_plain_username: str | None = Field(None, description="SASL user name")
    sasl_plain_password: SecretStr | None = Field(None, description="SASL password (secret: environment, config "
                                                                    "file or sasl_plain_password_file; never a flag)")
    sasl_plain_password_file: str | None = Field(None, description="file holding the SASL password")
    ssl_cafile: str | None = Field(None, description="CA certificate file (PEM) to verify the brokers")
    ssl_certfile: str | None = Field(None, description="client certificate file (PEM) for mutual TLS")
    ssl_keyfile: str | None = Field(None, description="client private key file (PEM) for mutual TLS")
    ssl_password: SecretStr | None = Field(None, description="password of an encrypted ssl_keyfile (secret)")
    ssl_password_file: str | None = Field(None, description="file holding the ssl_keyfile's password")

    @model_validator(mode="before")
    @classmethod
    def _secrets_from_files(cls, data: Any) -> Any:
        """Read each ``X_file`` setting into the secret ``X`` (one trailing newline dropped)."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for name in secret_names(cls):
            path = data.get(f"{name}_file")
            if not path:
                continue
            if data.get(name) is not None:
                raise ValueError(f"{name} and {name}_file are both set; give one")
            try:
                with open(path, encoding="utf-8") as fh:
                    data[name] = fh.read().removesuffix("\n")
            except OSError as exc:
                raise ValueError(f"cannot read {name}_file {path}: {exc.strerror}") from None
        return data

    def kafka_security(self) -> dict[str, Any]:
        """Keyword arguments for kafka-python clients (security pass-through)."""
        options: dict[str, Any] = {"security_protocol": self.security_protocol}
        for key in ("sasl_mechanism", "sasl_plain_username", "ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            value = getattr(self, key)
            if value is not None:
                options[key] = value
        if self.sasl_plain_password is not None:
            options["sasl_plain_password"] = self.sasl_plain_password.get_secret_value()
        if self.ssl_password is not None:
            options["ssl_password"] = self.ssl_password.get_secret_value()
        return options


class Settings(KafkaSettings):
    """Everything ``privwatch run`` can be told. Secrets are ``SecretStr`` (hidden in ``repr``).

    >>> s = Settings(sasl_plain_password="hunter2")
    >>> "hunter2" in repr(s)
    False
    """

    # -- Kafka (and, from KafkaSettings, the brokers and security) -------------------------------------
    group_id: str = Field("privwatch", description="consumer group of the service's instances")
    client_id: str = Field("privwatch", description="client id the brokers see (logs, quotas)")
    access_topic: str = Field("privwatch.access-events", description="input: access events, keyed by principal.id")
    permission_topic: str = Field("privwatch.permission-events",
                                  description="input: permission events, keyed by target.id (same partition count)")
    authentication_topic: str = Field("privwatch.authentication-events",
                                      description="input: sign-ins, keyed by principal.id (same partition count; "
                                                  "left out, with a warning, while it does not exist)")
    alerts_topic: str = Field("privwatch.alerts", description="output: alerts, keyed by alert_id")
    dead_letter_topic: str = Field("privwatch.dead-letter",
                                   description="output: input records that could not be used, with the reason")
    feedback_topic: str = Field("privwatch.feedback", description="input: analysts' verdicts on alerts")
    state_topic: str = Field("privwatch.state", description="compacted topic of the detectors' signed snapshots")
    auto_offset_reset: Literal["earliest", "latest"] = Field(
        "earliest", description="where a group with no committed offsets starts reading")
    # -- the loop ----------------------------------------------------------------------------------
    # a live input never fills a poll; a backlog does, and its polls' fixed costs spread over more records
    # (docs/performance.md: about 7% less CPU per event catching up at 5,000 than at 2,000)
    max_poll_records: int = Field(5000, ge=1, le=100_000, description="records handled per poll at most")
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
    max_clock_skew_s: float = Field(300.0, ge=0.0, le=86_400.0,
                                    description="events stamped further ahead of this host's clock are dead-lettered "
                                                "(future_timestamp): clock bugs, not activity")
    dead_letter_retention_ms: int = Field(7 * 86_400_000, ge=-1,
                                          description="retention.ms given to the dead-letter topic when privwatch "
                                                      "creates it (it holds producers' raw records, personal data "
                                                      "included); -1: kept forever")
    cooldown_s: float = Field(3600.0, ge=0.0,
                              description="after a page, the same detector stays quiet for the principal this long")
    catalog_file: str | None = Field(None, description="JSON data catalog: rules matching resource ids (exact, "
                                                       "prefix or glob; first match wins) to sensitivity and "
                                                       "categories; reloaded when it changes")
    catalog_topic: str | None = Field(None, description="data catalog as a compacted topic of rules, instead of a file")
    directory_file: str | None = Field(None, description="people directory (CSV, JSON or JSON lines): fills a "
                                                         "principal's missing kind, department, role and admin flag; "
                                                         "reloaded when it changes")
    directory_topic: str | None = Field(None, description="people directory as a compacted topic, instead of a file")
    reload_interval_s: float = Field(10.0, ge=0.0, description="how often the directory and catalog files are checked "
                                                               "for a change")
    # -- detection (docs/detectors.md) ---------------------------------------------------------------
    detectors: Names | None = Field(None, description="detectors to run (comma-separated); none: all of them")
    disabled_detectors: Names = Field([], description="detectors not to run (comma-separated)")
    detector_params: dict[str, dict[str, Any]] = Field(
        {}, description="each detector's parameters: a [privwatch.detector_params.NAME] table in the config file, "
                        "JSON for the flag and environment variable")
    warmup_events: int = Field(15, ge=0, description="a principal's events before detectors that need history page")
    warmup_days: float = Field(3.0, ge=0.0, description="days of a principal's history before those detectors page")
    admin_roles: Names = Field([], description="roles whose holders may grant permissions (comma-separated); the "
                                               "directory's admin flag decides first")
    admin_departments: Names = Field([], description="departments whose members may grant permissions")
    admin_groups: Names = Field([], description="directory groups whose members are admins")
    dedup_recent: int = Field(8192, ge=0, le=10_000_000, description="event ids remembered per partition: an event "
                                                                     "whose id was seen that recently is ignored")
    # -- state -------------------------------------------------------------------------------------
    durable_state: bool = Field(True, description="keep the detectors' state in signed snapshots on the state "
                                                  "topic (needs state_key); off: every restart starts cold")
    state_key: SecretStr | None = Field(None, description="key (>= 32 bytes) signing state snapshots (secret; "
                                                          "required with durable_state)")
    state_key_file: str | None = Field(None, description="file holding state_key")
    state_key_id: str = Field("1", pattern=r"^[A-Za-z0-9._-]{1,64}$",
                              description="id of state_key, written into each snapshot so that the right key "
                                          "verifies it after a rotation")
    state_verify_keys: SecretStr | None = Field(None, description="older keys that still verify (never sign) "
                                                                  "snapshots, as ID=KEY,ID=KEY (secret)")
    state_verify_keys_file: str | None = Field(None, description="file holding state_verify_keys")
    snapshot_interval_s: float = Field(30.0, ge=0.0, description="how often a checkpoint of the partitions' changed "
                                                                 "state is cut")
    checkpoint_budget_ms: int = Field(20, ge=1, le=10_000,
                                      description="poll-loop time per poll spent writing a checkpoint's changed "
                                                  "principals to the state topic (the rest waits for the next poll)")
    checkpoint_poll_records: int = Field(200, ge=1, le=100_000,
                                         description="records handled per poll at most while a checkpoint is being "
                                                     "written (a principal's first event since the cut writes its "
                                                     "record first: smaller polls bound that stall)")
    commons_topic: str = Field("privwatch.commons", description="compacted topic of each partition's signed "
                                                                 "partial aggregates (peer groups...), shared by "
                                                                 "every instance (docs/commons.md)")
    commons_interval_s: float = Field(5.0, ge=0.0, le=3600.0,
                                      description="how often (wall clock) each owned partition's partial "
                                                  "aggregates are published to the commons topic (shared across "
                                                  "instances with durable_state's key, else within each "
                                                  "instance); 0: not shared at all")
    commons_max_age_s: float = Field(120.0, gt=0.0,
                                     description="another instance's partial older than this is left out of "
                                                 "the shared baselines (its instance died)")
    # -- operations --------------------------------------------------------------------------------
    metrics_host: str = Field("127.0.0.1", description="address of the /metrics, /healthz and /readyz endpoint "
                                                       "(0.0.0.0 to be scraped from other hosts)")
    metrics_port: int = Field(9464, ge=0, le=65535, description="port of that endpoint (0: any free port)")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="log level")
    # -- paging ------------------------------------------------------------------------------------
    alertmanager_url: str | None = Field(None, description="Alertmanager base URL; none: no paging")
    alertmanager_resend_s: float = Field(60.0, gt=0, description="how often active pages are re-posted")
    alertmanager_active_s: float = Field(4 * 3600.0, gt=0,
                                         description="a page stays active this long (wall clock) after its last "
                                                     "update was delivered, then Alertmanager resolves it")
    alertmanager_detail: Literal["full", "summary"] = Field(
        "full", description="what page annotations carry: full (reasons, principal, evidence ids) or summary "
                            "(title, detectors, severity and links only)")
    alertmanager_bearer_token: SecretStr | None = Field(None, description="bearer token for Alertmanager (secret)")
    alertmanager_bearer_token_file: str | None = Field(None, description="file holding the bearer token")
    alertmanager_username: str | None = Field(None, description="basic-auth user name for Alertmanager")
    alertmanager_password: SecretStr | None = Field(None, description="basic-auth password for Alertmanager "
                                                                      "(secret)")
    alertmanager_password_file: str | None = Field(None, description="file holding the basic-auth password")
    alertmanager_ca_file: str | None = Field(None, description="CA certificate file (PEM) to verify Alertmanager")
    alertmanager_cert_file: str | None = Field(None, description="client certificate (PEM) for Alertmanager")
    alertmanager_key_file: str | None = Field(None, description="client private key (PEM) for Alertmanager")
    deliver_in_run: bool = Field(True, description="with alertmanager_url, privwatch run also delivers pages (a "
                                                   "thread with its own consumer group); off: run privwatch "
                                                   "deliver beside it")
    delivery_group_id: str | None = Field(None, description="consumer group delivering pages (default: "
                                                            "group_id + '.deliver')")
    pseudonymise: Literal["off", "alertmanager", "alerts"] = Field(
        "off", description="replace principal and resource ids by keyed hashes in pages (alertmanager) or also in "
                           "the alerts topic's documents (alerts); details stay behind the evidence link")
    pseudonym_key: SecretStr | None = Field(None, description="key (>= 32 bytes) of the pseudonyms (secret)")
    pseudonym_key_file: str | None = Field(None, description="file holding pseudonym_key")
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
    triage_trusted_proxies: int = Field(0, ge=0, le=4, description="reverse proxies in front of the triage app "
                                                                 "whose X-Forwarded-For gives the client address "
                                                                 "(sign-in throttling)")
    triage_url: str | None = Field(None, description="public base URL of the triage app, for links printed by "
                                                     "the CLI (set evidence_url to TRIAGE_URL/incidents/{incident_id})")

    @field_validator("detector_params", mode="before")
    @classmethod
    def _params(cls, value: Any) -> Any:
        from stream.detection import check_params

        return check_params(value)

    @field_validator("detectors", "disabled_detectors")
    @classmethod
    def _detectors(cls, value: Any, info: Any) -> Any:
        from stream.detection import check_detectors

        return check_detectors(value, info.field_name)

    @model_validator(mode="after")
    def _pseudonyms_need_a_key(self) -> Settings:
        if self.pseudonymise != "off" and self.pseudonym_key is None:
            raise ValueError("pseudonymise needs a pseudonym_key (PRIVWATCH_PSEUDONYM_KEY or pseudonym_key_file)")
        return self

    def changed(self) -> dict[str, Any]:
        """The settings that differ from their defaults (secrets hidden), for the start-up log line."""
        return {k: v for k, v in self if v != Settings.model_fields[k].default}

    def verify_keys(self) -> dict[str, bytes]:
        """The state keys by id: the signing key and the older ones that still verify."""
        keys = {}
        if self.state_verify_keys is not None:
            for pair in self.state_verify_keys.get_secret_value().split(","):
                key_id, sep, key = pair.strip().partition("=")
                if not sep or not key_id or not key:
                    raise ValueError("state_verify_keys must be ID=KEY pairs separated by commas")
                keys[key_id] = key.encode()
        if self.state_key is not None:
            keys[self.state_key_id] = self.state_key.get_secret_value().encode()
        return keys


def secret_names(model: type[BaseModel]) -> tuple[str, ...]:
    """``model``'s secret settings (each has an ``X_file`` setting and no command-line flag)."""
    return tuple(name for name, info in model.model_fields.items() if info.annotation == SecretStr | None)
