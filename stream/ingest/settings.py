"""``privwatch ingest``'s settings: the same sources and rules as the service's (flags win, then
``PRIVWATCH_*`` variables, then the config file's ``[ingest]`` table, then defaults; unknown keys
rejected; secrets hidden and read from their ``*_file``), with the service's Kafka and security
settings (:class:`stream.settings.KafkaSettings`) under the same names."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from stream.config import register
from stream.ingest.formats import FORMATS
from stream.ingest.pipeline import DEFAULT_PRIVILEGED
from stream.settings import KafkaSettings, Names


@register
class IngestSettings(KafkaSettings):
    """Everything ``privwatch ingest`` can be told.

    >>> IngestSettings(format="okta", admin_roles="admin,owner").admin_roles
    ['admin', 'owner']
    """

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
    max_poll_records: int = Field(500, ge=1, le=100_000, description="raw records handled per poll at most")
    poll_timeout_ms: int = Field(200, ge=1, le=60_000, description="how long a poll waits for records")
    commit_interval_ms: int = Field(1000, ge=0, le=600_000, description="how often offsets are committed (after "
                                                                        "everything produced is acknowledged)")
    produce_timeout_s: float = Field(60.0, gt=0, description="longest wait for the brokers to acknowledge what was "
                                                             "produced before a commit")
    metrics_host: str = Field("127.0.0.1", description="address of the /metrics endpoint (0.0.0.0 to be scraped "
                                                       "from other hosts)")
    metrics_port: int = Field(9465, ge=0, le=65535, description="port of the /metrics endpoint (0: none)")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="log level")
