"""``privwatch ingest``'s settings: the same sources and rules as the service's (flags win, then
``PRIVWATCH_*`` variables, then the config file's ``[ingest]`` table, then defaults; unknown keys
rejected; secrets hidden), with the service's Kafka and security settings under the same names."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr

from stream.ingest.formats import FORMATS
from stream.ingest.pipeline import DEFAULT_PRIVILEGED


def comma_list(value: Any) -> Any:
    """``"a,b"`` (a flag or an environment variable) -> ``["a", "b"]``; lists pass."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


Names = Annotated[list[str], BeforeValidator(comma_list)]


class IngestSettings(BaseModel):
    """Everything ``privwatch ingest`` can be told.

    >>> IngestSettings(format="okta", admin_roles="admin,owner").admin_roles
    ['admin', 'owner']
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal[tuple(FORMATS)] | None = Field(  # type: ignore[valid-type]
        None, description="source format of the raw records")
    # -- reference data ------------------------------------------------------------------------------
    directory_file: str | None = Field(None, description="people directory: CSV, JSON or JSON lines of principals "
                                                         "with their aliases (reloaded when it changes)")
    directory_topic: str | None = Field(None, description="people directory as a compacted topic (key: principal "
                                                          "id, value: its JSON record), instead of a file")
    catalog_file: str | None = Field(None, description="data catalog JSON: rules by id, prefix or glob, first "
                                                       "match wins (reloaded when it changes)")
    catalog_topic: str | None = Field(None, description="data catalog as a compacted topic (key: rule id, value: "
                                                        "the rule with its order)")
    reload_interval_s: float = Field(10.0, ge=0.0, description="how often the directory and catalog files are "
                                                               "checked for a change")
    admin_roles: Names = Field([], description="directory roles whose members are admins (comma-separated)")
    admin_groups: Names = Field([], description="directory groups whose members are admins (comma-separated)")
    privileged_permissions: Names = Field(list(DEFAULT_PRIVILEGED), description="globs of permissions that make a "
                                          "grant privileged (comma-separated)")
    # -- stream mode ---------------------------------------------------------------------------------
    from_topic: str | None = Field(None, description="stream mode: the raw topic to consume")
    bootstrap_servers: str = Field("127.0.0.1:9092", description="Kafka brokers to start from, HOST:PORT[,...]")
    group_id: str = Field("privwatch-ingest", description="consumer group of the ingest instances")
    client_id: str = Field("privwatch-ingest", description="client id the brokers see")
    access_topic: str = Field("privwatch.access-events", description="output: access events, keyed by principal")
    permission_topic: str = Field("privwatch.permission-events", description="output: permission events, keyed "
                                                                             "by target")
    authentication_topic: str = Field("privwatch.authentication-events", description="output: sign-ins, keyed by "
                                                                                     "principal")
    dead_letter_topic: str = Field("privwatch.dead-letter", description="output: raw records that could not be "
                                                                        "mapped, with the reason")
    auto_offset_reset: Literal["earliest", "latest"] = Field("earliest", description="where a new group starts")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="how clients talk to the brokers")
    sasl_mechanism: str | None = Field(None, description="SASL mechanism, e.g. PLAIN or SCRAM-SHA-512")
    sasl_plain_username: str | None = Field(None, description="SASL user name")
    sasl_plain_password: SecretStr | None = Field(None, description="SASL password (secret: prefer the environment)")
    ssl_cafile: str | None = Field(None, description="CA certificate file (PEM) to verify the brokers")
    ssl_certfile: str | None = Field(None, description="client certificate file (PEM) for mutual TLS")
    ssl_keyfile: str | None = Field(None, description="client private key file (PEM) for mutual TLS")
    max_poll_records: int = Field(500, ge=1, le=100_000, description="raw records handled per poll at most")
    poll_timeout_ms: int = Field(200, ge=1, le=60_000, description="how long a poll waits for records")
    commit_interval_ms: int = Field(1000, ge=0, le=600_000, description="how often offsets are committed (after "
                                                                        "everything produced is acknowledged)")
    produce_timeout_s: float = Field(60.0, gt=0, description="longest wait for the brokers to acknowledge what was "
                                                             "produced before a commit")
    metrics_host: str = Field("0.0.0.0", description="address of the /metrics endpoint")
    metrics_port: int = Field(9465, ge=0, le=65535, description="port of the /metrics endpoint (0: none)")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="log level")

    def kafka_security(self) -> dict[str, Any]:
        """Keyword arguments for kafka-python clients (as :meth:`stream.settings.Settings.kafka_security`)."""
        options: dict[str, Any] = {"security_protocol": self.security_protocol}
        for key in ("sasl_mechanism", "sasl_plain_username", "ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            value = getattr(self, key)
            if value is not None:
                options[key] = value
        if self.sasl_plain_password is not None:
            options["sasl_plain_password"] = self.sasl_plain_password.get_secret_value()
        return options
