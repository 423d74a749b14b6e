"""Where settings come from: flags win, then ``PRIVWATCH_*`` environment variables, then the config
file (TOML), then defaults. Unknown keys are rejected and every error is reported at start-up, in one
line (:class:`~stream.errors.ConfigError`). The models themselves are in :mod:`stream.settings`."""

from __future__ import annotations

import argparse
import os
import tomllib
from collections.abc import Mapping
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, SecretStr, ValidationError

from stream.errors import ConfigError
from stream.settings import ENV_PREFIX, Settings


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def describe(name: str, model: type[BaseModel] | None = None) -> str:
    """A setting's help: its meaning, allowed values, default and environment variable."""
    info = (model or Settings).model_fields[name]
    allowed = get_args(info.annotation) if get_origin(info.annotation) is Literal else ()
    parts = [info.description or name.replace("_", " ")]
    if allowed:
        parts.append("one of " + ", ".join(allowed))
    default = "none" if info.default is None else repr(info.default) if isinstance(info.default, str) else info.default
    parts.append(f"default {default}; env {ENV_PREFIX + name.upper()}")
    return "; ".join(parts)


def markdown_table(model: type[BaseModel] | None = None) -> str:
    """The settings as the Markdown table of ``docs/configuration.md`` (a test keeps them in step:
    ``python -c 'from stream.config import markdown_table; print(markdown_table())'``)."""
    rows = ["| setting | environment | default | meaning |", "|---|---|---|---|"]
    for name, info in (model or Settings).model_fields.items():
        default = "unset" if info.default is None else f"`{info.default}`"
        allowed = get_args(info.annotation) if get_origin(info.annotation) is Literal else ()
        meaning = (info.description or "").replace("|", "\\|") + (f" ({', '.join(allowed)})" if allowed else "")
        rows.append(f"| `{name}` | `{ENV_PREFIX + name.upper()}` | {default} | {meaning} |")
    return "\n".join(rows)


def add_flags(parser: argparse.ArgumentParser, model: type[BaseModel] | None = None,
              skip: frozenset[str] = frozenset()) -> None:
    """Add ``--config`` and one flag per setting of ``model`` (default :class:`Settings`; none for the
    names in ``skip``, which the command adds itself), default None so unset flags do not override;
    a switch (``--x``/``--no-x``) for each true/false setting. Secrets get no flag: the environment,
    the config file or their ``*_file`` setting."""
    model = model or Settings
    parser.add_argument("--config", metavar="FILE", help="TOML config file (keys as the flags, with _)")
    parser.allow_abbrev = False  # else --state-key would be taken for --state-key-file
    for name, info in model.model_fields.items():
        if name in skip or info.annotation == SecretStr | None:
            continue
        if info.annotation is bool:
            parser.add_argument(_flag(name), dest=name, default=None, action=argparse.BooleanOptionalAction,
                                help=describe(name, model))
        else:
            parser.add_argument(_flag(name), dest=name, default=None, metavar=name.split("_")[-1].upper(),
                                help=describe(name, model))


def _from_env(environ: Mapping[str, str], model: type[BaseModel] | None = None,
              others: frozenset[str] = frozenset()) -> dict[str, str]:
    """The ``PRIVWATCH_*`` variables naming settings of ``model``; any other is an error unless it names
    a setting in ``others`` (another command's: one environment serves ``run`` and ``ingest``)."""
    model = model or Settings
    known = {ENV_PREFIX + name.upper(): name for name in model.model_fields}
    others_env = {ENV_PREFIX + name.upper() for name in others}
    ignored = (ENV_PREFIX + "CONFIG", ENV_PREFIX + "TEST_")  # the config path itself; test-suite knobs
    not_settings = {ENV_PREFIX + "PURE",  # read at import by detectors/native.py: run the pure-Python build
                    ENV_PREFIX + "ANALYST_KEY"}  # privwatch feedback's private key: never a flag, so no setting
    unknown = [k for k in environ
               if k.startswith(ENV_PREFIX) and k not in known and k not in not_settings and k not in others_env
               and not k.startswith(ignored)]
    if unknown:
        raise ConfigError(f"unknown environment variable(s): {', '.join(sorted(unknown))}")
    return {known[k]: v for k, v in environ.items() if k in known}


def _from_file(path: str | None, section: str = "privwatch") -> dict[str, Any]:
    if not path:
        return {}
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    if section != "privwatch":  # another command's table: only it, if the file has one
        return dict(data.get(section, {}))
    data = data.get("privwatch", data)
    return {k: v for k, v in data.items() if k != "ingest" or not isinstance(v, dict)}


#: the settings models of privwatch's commands: one environment serves them all, so a ``PRIVWATCH_*``
#: variable naming a setting of any of them is not unknown to another (a command's own settings module
#: registers its model with :func:`register`; the CLI imports every command before it parses)
MODELS: list[type[BaseModel]] = []


def register(model: type[BaseModel]) -> type[BaseModel]:
    """Make ``model``'s settings known to every command's environment check."""
    MODELS.append(model)
    return model


def load_settings(
    flags: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None,
    model: type[BaseModel] | None = None, section: str = "privwatch",
) -> Any:
    """Merge the sources (flags > env > file > defaults) and validate; raise ConfigError on any problem.
    ``model`` (default :class:`Settings`) reads the config file's ``[section]`` table (or its top level)."""
    model = model or Settings
    flags = dict(flags or {})
    environ = os.environ if environ is None else environ
    config_file = flags.pop("config", None) or environ.get(ENV_PREFIX + "CONFIG")
    merged: dict[str, Any] = _from_file(config_file, section)
    models: list[type[BaseModel]] = [Settings, *MODELS]
    others = frozenset(name for other in models if other is not model for name in other.model_fields)
    merged.update(_from_env(environ, model, others))
    merged.update({k: v for k, v in flags.items() if v is not None and k in model.model_fields})
    try:
        return model(**merged)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors(include_url=False)
        )
        raise ConfigError(f"invalid settings: {problems}") from None
