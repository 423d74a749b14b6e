"""The analysts file (``analysts_file``): who may give verdicts, with which keys, and who may sign in.

TOML, one table per analyst::

    [[analyst]]
    name = "alice"                       # as verdicts and the triage app name her
    principal_ids = ["u-1001"]           # her own ids in the events: no verdict of hers about these counts
    password_hash = "scrypt:32768:8:1$..."  # triage sign-in (privwatch triage passwd); none: no sign-in
    keys = [{id = "alice-2026-11", public_key = "base64url of the 32-byte Ed25519 public key"}]

Only public keys are here (``privwatch triage keygen`` makes a pair and prints the table). An analyst
may list several keys (rotation): a verdict names the one it was signed with.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from stream.errors import ConfigError, first_error
from stream.feedback.signing import load_public


class _Key(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str = Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")
    public_key: str

    @field_validator("public_key")
    @classmethod
    def _is_key(cls, value: str) -> str:
        load_public(value)
        return value


class _Analyst(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: Annotated[str, Field(min_length=1, max_length=128)]
    principal_ids: list[Annotated[str, Field(min_length=1, max_length=256)]] = []
    password_hash: str | None = None
    keys: list[_Key] = []


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    analyst: list[_Analyst] = []


@dataclass(frozen=True)
class Analyst:
    name: str
    #: the analyst's own principal ids (and name): verdicts of theirs about these are refused
    own_ids: frozenset[str]
    password_hash: str | None
    key_ids: tuple[str, ...]


@dataclass
class Analysts:
    """The configured analysts and their public keys, by name and by key id."""

    by_name: dict[str, Analyst] = field(default_factory=dict)
    #: key id -> (analyst name, public key)
    keys: dict[str, tuple[str, Ed25519PublicKey]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.by_name)

    def key(self, analyst: str, key_id: str) -> Ed25519PublicKey | None:
        """``analyst``'s public key ``key_id``, or None when that key is not hers."""
        entry = self.keys.get(key_id)
        return entry[1] if entry is not None and entry[0] == analyst else None

    def is_self(self, analyst: str, principal_id: str, named: Callable[[str], str] | None = None) -> bool:
        """Whether ``principal_id`` is one of the analyst's own (``named``: compared as pseudonyms)."""
        known = self.by_name.get(analyst)
        if known is None:
            return False
        return principal_id in (known.own_ids if named is None else {named(p) for p in known.own_ids})


def parse_analysts(text: str, where: str = "analysts file") -> Analysts:
    """Analysts from the TOML text of an analysts file (ConfigError saying what is wrong)."""
    try:
        doc = _File.model_validate(tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except ValidationError as exc:
        field, msg = first_error(exc, "")
        raise ConfigError(f"{where}: {field}: {msg}") from None
    out = Analysts()
    for entry in doc.analyst:
        if entry.name in out.by_name:
            raise ConfigError(f"{where}: analyst {entry.name!r} is listed twice")
        for key in entry.keys:
            if key.id in out.keys:
                raise ConfigError(f"{where}: key id {key.id!r} is listed twice")
            out.keys[key.id] = (entry.name, load_public(key.public_key))
        out.by_name[entry.name] = Analyst(entry.name, frozenset([entry.name, *entry.principal_ids]),
                                          entry.password_hash, tuple(k.id for k in entry.keys))
    return out


def load_analysts(path: str | None) -> Analysts:
    """The analysts of ``path`` (no path: none, so every verdict is refused)."""
    if not path:
        return Analysts()
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise ConfigError(f"cannot read analysts file {path}: {exc.strerror}") from None
    return parse_analysts(text, path)
