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
from collections.abc import Callable
from typing import Any

from detectors.alerts import alert_id, parse_alert_id

PREFIX = "pn-"


def pseudonym(key: bytes, value: str) -> str:
    """The pseudonym of one id.

    >>> pseudonym(b"k" * 32, "u-4821")
    'pn-2bf51e06f4a63734'
    """
    return PREFIX + hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()[:16]


def pseudonyms(key: bytes | None) -> Callable[[str], str] | None:
    """Ids to their pseudonyms under ``key`` (None without a key)."""
    if key is None:
        return None
    return lambda value: pseudonym(key, value)


def _ids(doc: dict[str, Any]) -> set[str]:
    ids = {str(doc.get("principal_id") or "")}
    for name in ("related_principal_ids", "resource_ids"):
        ids.update(str(i) for i in doc.get(name) or ())
    incident = doc.get("incident")
    if isinstance(incident, dict):
        ids |= _ids(incident)
    ids.discard("")
    return ids


def pseudonymise(doc: dict[str, Any], key: bytes, alert_key: bytes | None = None) -> dict[str, Any]:
    """A copy of an alert or incident document with its principal and resource ids pseudonymised.

    With ``alert_key`` (the service's alert-id key), alert ids are made anew from the pseudonyms of
    their principal and event id, with their MAC under that key, so that an analyst's verdict on a
    pseudonymised alert still authenticates (:func:`detectors.alerts.check_alert_id`) and names the
    principal as the service's feedback policy looks it up (``FeedbackPolicy.pseudonyms``).

    >>> doc = pseudonymise({"principal_id": "u-1", "resource_ids": ["hr.pay"], "title": "u-1 read hr.pay",
    ...                     "reasons": ["hr.pay: 5,000 rows"]}, b"k" * 32)
    >>> "u-1" in str(doc) or "hr.pay" in str(doc), doc["title"].count("pn-")
    (False, 2)
    >>> pseudonymise({"alert_id": "volume:u-1:e9:98a4798fe6cf59ed", "principal_id": "u-1"}, b"k" * 32,
    ...              alert_key=b"k" * 32)["alert_id"]
    'volume:pn-79c14fe793b14633:pn-33a09b687f1568a2:7431151638a24d8f'
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

    out = {k: text(v) for k, v in doc.items()}
    if alert_key is not None:
        if "alert_id" in doc:
            out["alert_id"] = rekeyed(str(doc["alert_id"]), key, alert_key)
        incident = doc.get("incident")
        if isinstance(incident, dict) and isinstance(incident.get("alert_ids"), list):
            out["incident"]["alert_ids"] = [rekeyed(str(a), key, alert_key) for a in incident["alert_ids"]]
    return out


def rekeyed(value: str, key: bytes, alert_key: bytes) -> str:
    """The alert id ``value`` made of its principal's and event's pseudonyms, with a new MAC."""
    try:
        detector, principal, event_id, _ = parse_alert_id(value)
    except ValueError:
        return pseudonym(key, value)
    return alert_id(detector, pseudonym(key, principal), pseudonym(key, event_id), alert_key)
