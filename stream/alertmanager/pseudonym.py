"""Pseudonymised documents for wide audiences: principal and resource ids replaced by keyed hashes.

Pages travel far (chat channels, e-mail, ticket titles); with ``pseudonymise`` on, what they show of
a person or a data set is ``pn-`` and 16 hex digits of HMAC-SHA256 under ``pseudonym_key``: the same
id always gives the same pseudonym, so responders can still tell principals apart, and whoever holds
the key (the evidence link's tool) can check which id is meant. The ids are also replaced where
titles, reasons, alert ids and evidence ids spell them out.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

PREFIX = "pn-"


def pseudonym(key: bytes, value: str) -> str:
    """The pseudonym of one id.

    >>> pseudonym(b"k" * 32, "u-4821")
    'pn-2bf51e06f4a63734'
    """
    return PREFIX + hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()[:16]


def _ids(doc: dict[str, Any]) -> set[str]:
    ids = {str(doc.get("principal_id") or "")}
    for name in ("related_principal_ids", "resource_ids"):
        ids.update(str(i) for i in doc.get(name) or ())
    incident = doc.get("incident")
    if isinstance(incident, dict):
        ids |= _ids(incident)
    ids.discard("")
    return ids


def pseudonymise(doc: dict[str, Any], key: bytes) -> dict[str, Any]:
    """A copy of an alert or incident document with its principal and resource ids pseudonymised.

    >>> doc = pseudonymise({"principal_id": "u-1", "resource_ids": ["hr.pay"], "title": "u-1 read hr.pay",
    ...                     "reasons": ["hr.pay: 5,000 rows"]}, b"k" * 32)
    >>> "u-1" in str(doc) or "hr.pay" in str(doc), doc["title"].count("pn-")
    (False, 2)
    """
    names = {value: pseudonym(key, value) for value in _ids(doc)}
    ordered = sorted(names, key=len, reverse=True)  # a longer id before any id it contains

    def text(value: Any) -> Any:
        if isinstance(value, str):
            for plain in ordered:
                if plain in value:
                    value = value.replace(plain, names[plain])
            return value
        if isinstance(value, list):
            return [text(v) for v in value]
        if isinstance(value, dict):
            return {k: text(v) for k, v in value.items()}
        return value

    return {k: text(v) for k, v in doc.items()}
