"""The data catalog: rules matching resource ids to a sensitivity and data categories, first match wins.

A rule matches by exact ``id``, by ``prefix``, or by ``match``, a glob (``*`` any run of characters,
``/`` included; ``?`` one; ``[...]`` a set): ``arn:aws:s3:::customer-*/*``, ``bq:*.analytics.hr_*``.
A catalog file is JSON: ``{"rules": [...]}`` or a list of rules, in order; the earlier form, a mapping
of exact resource ids to ``{"sensitivity", "categories"}``, still loads (as exact rules, in file order).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from typing import Annotated, Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from stream.contract.models import Sensitivity
from stream.errors import ConfigError, first_error

#: resource id -> its (sensitivity, categories): a cache (cleared when full), not state
_MEMO_CAP = 65_536


class Rule(BaseModel):
    """One catalog rule: exactly one of ``id``, ``prefix`` or ``match``; what it gives a resource."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str | None = None
    prefix: str | None = None
    match: str | None = None
    sensitivity: Sensitivity = None
    categories: list[Annotated[str, Field(max_length=64)]] = []
    #: where the rule stands among those of a compacted topic (files keep their own order)
    order: int = 0

    @model_validator(mode="after")
    def _one_matcher(self) -> Rule:
        if sum(x is not None for x in (self.id, self.prefix, self.match)) != 1:
            raise ValueError("a rule has exactly one of id, prefix or match")
        return self


class Catalog:
    """Ordered rules with a memo of what each resource id matched.

    >>> c = Catalog([Rule(match="arn:aws:s3:::customer-*/*", sensitivity="restricted", categories=["pii.contact"]),
    ...              Rule(prefix="arn:aws:s3:::", sensitivity="internal")])
    >>> c.lookup("arn:aws:s3:::customer-eu/2026/orders.csv")
    ('restricted', ('pii.contact',))
    >>> c.lookup("arn:aws:s3:::logs/x"), c.lookup("bq:p.d.t")
    (('internal', ()), (None, ()))
    """

    def __init__(self, rules: Iterable[Rule] = ()) -> None:
        self.rules = list(rules)
        self._tests = [self._test(rule) for rule in self.rules]
        self._memo: dict[str, tuple[str | None, tuple[str, ...]]] = {}

    @staticmethod
    def _test(rule: Rule) -> Any:
        if rule.id is not None:
            return rule.id.__eq__
        if rule.prefix is not None:
            return lambda rid, p=rule.prefix: rid.startswith(p)
        return re.compile(fnmatch.translate(rule.match or "")).match

    def __len__(self) -> int:
        return len(self.rules)

    def lookup(self, resource_id: str) -> tuple[str | None, tuple[str, ...]]:
        """(sensitivity, categories) of the first rule matching ``resource_id``; (None, ()) if none."""
        known = self._memo.get(resource_id)
        if known is not None:
            return known
        found: tuple[str | None, tuple[str, ...]] = (None, ())
        for rule, test in zip(self.rules, self._tests, strict=True):
            if test(resource_id):
                found = (rule.sensitivity, tuple(rule.categories))
                break
        if len(self._memo) >= _MEMO_CAP:
            self._memo.clear()
        self._memo[resource_id] = found
        return found


def parse_rules(raw: bytes, name: str) -> list[Rule]:
    """Rules from a catalog file's bytes (see the module docstring); ConfigError names the bad rule."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"catalog {name} is not JSON: {exc}") from None
    if isinstance(doc, dict) and "rules" not in doc:  # the exact-id mapping of the first catalogs
        items: list[Any] = [{"id": rid, **(entry if isinstance(entry, dict) else {"sensitivity": entry})}
                            for rid, entry in doc.items()]
    else:
        items = doc.get("rules", []) if isinstance(doc, dict) else doc
    rules = []
    for number, item in enumerate(items, 1):
        try:
            rules.append(Rule.model_validate(item))
        except ValidationError as exc:
            where, msg = first_error(exc, "rule")
            raise ConfigError(f"catalog {name} rule {number} is not valid at {where}: {msg}") from None
    return rules


def load_catalog(path: str) -> Catalog:
    """A catalog file (see :func:`parse_rules`)."""
    try:
        with open(path, "rb") as fh:
            return Catalog(parse_rules(fh.read(), path))
    except OSError as exc:
        raise ConfigError(f"cannot read catalog {path}: {exc.strerror}") from None
