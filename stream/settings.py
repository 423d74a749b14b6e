"""Typed settings: flags win, then ``PRIVWATCH_*`` environment variables, then the config file
(TOML), then defaults. Unknown keys are rejected and every error is reported at start-up."""

from __future__ import annotations

import argparse
import os
import tomllib
from collections.abc import Mapping
from typing import Any, Literal

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

    bootstrap_servers: str = "127.0.0.1:9092"
    group_id: str = "privwatch"
    client_id: str = "privwatch"
    access_topic: str = "privwatch.access-events"
    permission_topic: str = "privwatch.permission-events"
    alerts_topic: str = "privwatch.alerts"
    dead_letter_topic: str = "privwatch.dead-letter"
    feedback_topic: str = "privwatch.feedback"
    state_topic: str = "privwatch.state"
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    max_poll_records: int = Field(2000, ge=1, le=100_000)
    poll_timeout_ms: int = Field(200, ge=1, le=60_000)
    #: the input consumer's fetches: the broker answers once this much is ready or after
    #: ``fetch_max_wait_ms``, so a busy stream is read in fewer, larger fetches (less CPU per event)
    #: and a quiet one waits at most that long (Kafka's own defaults are 1 byte and 500 ms). Measured at
    #: 26k events/s (``privwatch bench``'s latency phase on this 2-CPU machine): 256 KiB took 25-27 µs of
    #: CPU per event against 29-32 with 64 KiB (fetches four times the size), for 10-15 ms more p50
    fetch_min_bytes: int = Field(256 << 10, ge=1, le=8 << 20)
    fetch_max_wait_ms: int = Field(50, ge=1, le=60_000)  # 0 would spin on a quiet topic
    merge_wait_ms: int = Field(500, ge=0, le=60_000)
    #: freed heap memory (MiB) the process keeps for the next fetch instead of returning it to the
    #: kernel, which would fault it back in (``stream.ops.heap``); 0 keeps the C library's defaults
    heap_keep_mb: int = Field(128, ge=0, le=2047)  # mallopt takes a C int of bytes
    commit_interval_ms: int = Field(1000, ge=0, le=600_000)
    snapshot_interval_s: float = Field(30.0, ge=0.0)
    #: encode periodic snapshots in a forked child (copy-on-write) instead of stalling the loop
    snapshot_in_background: bool = True
    state_key: SecretStr | None = None
    metrics_host: str = "0.0.0.0"
    metrics_port: int = Field(9464, ge=0, le=65535)
    alertmanager_url: str | None = None
    alertmanager_resend_s: float = Field(60.0, gt=0)
    alertmanager_queue_size: int = Field(10_000, ge=1)
    correlation_window_s: float = Field(3600.0, ge=0.0)
    evidence_url: str | None = None
    runbook_base_url: str = "https://github.com/privwatch/privwatch/blob/main/docs/runbooks"
    catalog_file: str | None = None
    cooldown_s: float = Field(3600.0, ge=0.0)
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_plain_username: str | None = None
    sasl_plain_password: SecretStr | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

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


def add_flags(parser: argparse.ArgumentParser) -> None:
    """Add ``--config`` and one flag per setting (default None, so unset flags do not override)."""
    parser.add_argument("--config", metavar="FILE", help="TOML config file (keys as the flags, with _)")
    for name, info in Settings.model_fields.items():
        env = ENV_PREFIX + name.upper()
        parser.add_argument(_flag(name), dest=name, default=None, help=f"default {info.default!r}; env {env}")


def _from_env(environ: Mapping[str, str]) -> dict[str, str]:
    known = {ENV_PREFIX + name.upper(): name for name in Settings.model_fields}
    ignored = (ENV_PREFIX + "CONFIG", ENV_PREFIX + "TEST_")  # the config path itself; test-suite knobs
    not_settings = {ENV_PREFIX + "PURE"}  # read at import by detectors/native.py: run the pure-Python build
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
