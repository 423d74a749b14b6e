"""What every format module shares: the skip/reject outcomes, timestamps, ids, and the builders of
contract event dicts. Builders leave out what they are not given: nothing is invented."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson

#: event id prefixes, one per format (ids from different sources never collide)
PREFIXES = {"cloudtrail": "ct", "gcp-audit": "gcp", "entra": "entra", "okta": "okta", "k8s-audit": "k8s",
            "ocsf": "ocsf"}
MAX_EVENT_ID = 128


class Skip(Exception):  # noqa: N818 - an outcome, not an error
    """A well-formed record that is not a data-access, permission or sign-in event (``reason``: a short
    code such as ``not_mapped``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Reject(Exception):  # noqa: N818 - an outcome that goes to the rejects file or dead-letter topic
    """A record that cannot be used: ``reason`` a short code, ``detail`` for a person."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def dig(record: Any, *path: str | int) -> Any:
    """``record[a][b]...`` or None where any step is missing or of the wrong type.

    >>> dig({"a": {"b": [1, {"c": 2}]}}, "a", "b", 1, "c"), dig({"a": 1}, "a", "b")
    (2, None)
    """
    for step in path:
        if isinstance(step, int):
            if not isinstance(record, list) or not -len(record) <= step < len(record):
                return None
        elif not isinstance(record, dict):
            return None
        record = record[step] if isinstance(step, int) else record.get(step)
    return record


def obj(value: Any) -> dict[str, Any]:
    """``value`` when it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


def seq(value: Any) -> list[Any]:
    """``value`` when it is a JSON array, else an empty one."""
    return value if isinstance(value, list) else []


def text(value: Any) -> str | None:
    """A non-empty string, or None."""
    return value if isinstance(value, str) and value.strip() else None


def parse_ts(value: Any, naive_is_utc: bool = True) -> str:
    """An RFC 3339 timestamp (``...Z``) from the source's: ISO 8601 with ``T`` or a space, an offset or
    ``Z``; without an offset only when the format documents UTC (``naive_is_utc``); or epoch milliseconds
    (OCSF). Raises Reject("bad_timestamp").

    >>> parse_ts("2022-06-22 18:18:29.015"), parse_ts(1700000000123), parse_ts("2020-09-14T01:02:34+02:00")
    ('2022-06-22T18:18:29.015Z', '2023-11-14T22:13:20.123Z', '2020-09-13T23:02:34.000Z')
    """
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            moment = datetime.fromtimestamp(value / 1000.0, UTC)
        elif isinstance(value, str) and value:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
            if moment.tzinfo is None:
                if not naive_is_utc:
                    raise Reject("bad_timestamp", f"no time zone in {value!r}")
                moment = moment.replace(tzinfo=UTC)
        else:
            raise Reject("missing_field", "no timestamp")
    except (ValueError, OverflowError, OSError):
        raise Reject("bad_timestamp", f"cannot read {str(value)[:40]!r}") from None
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def record_id(record: dict[str, Any], own: Any) -> str:
    """The record's own id when it has one, else ``sha256:`` of its canonical JSON (so that the same
    record always gets the same id, and its events the same ``event_id``)."""
    if isinstance(own, str | int) and not isinstance(own, bool) and str(own):
        return str(own)[:256]
    digest = hashlib.sha256(orjson.dumps(record, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return f"sha256:{digest[:40]}"


def event_id(fmt: str, rid: str, part: str | int | None = None) -> str:
    """Deterministic: the format's prefix, the record id and, for a record that yields several events,
    which one. Too long ids are hashed (the contract allows 128 characters)."""
    eid = f"{PREFIXES[fmt]}:{rid}" + ("" if part is None else f":{part}")
    if len(eid) > MAX_EVENT_ID:
        eid = f"{PREFIXES[fmt]}:h:{hashlib.sha256(eid.encode()).hexdigest()[:48]}"
    return eid


@lru_cache(maxsize=512)
def country_code(value: str | None) -> str | None:
    """ISO 3166-1 alpha-2 from a code or an English name (``pycountry``); None when unknown.

    >>> country_code("United States"), country_code("gb"), country_code("Atlantis")
    ('US', 'GB', None)
    """
    if not value or not value.strip():
        return None
    import pycountry

    try:
        return str(pycountry.countries.lookup(value.strip()).alpha_2)
    except LookupError:
        return None


def principal(pid: str | None, *aliases: str | None, kind: str | None = None) -> dict[str, Any]:
    """A principal dict. ``id`` is ``pid`` (what the event names when the directory knows none of the
    identifiers; the first alias when ``pid`` is None). ``aliases`` are the identifiers the source gave,
    most specific first, for the directory to resolve in that order, ``pid`` last (removed before the
    event is written).

    >>> principal("arn:role/r", "arn:session/r/s", "s")
    {'id': 'arn:role/r', 'aliases': ['arn:session/r/s', 's', 'arn:role/r']}
    """
    names = [a for a in aliases if isinstance(a, str) and a]
    if pid:
        names.append(pid)
    if not names:
        raise Reject("no_principal", "the record names no principal")
    who: dict[str, Any] = {"id": (pid or names[0])[:256]}
    if len(names) > 1:
        who["aliases"] = list(dict.fromkeys(names))
    if kind is not None:
        who["kind"] = kind
    return who


def source(ip: Any = None, country: Any = None, device: Any = None, agent: Any = None) -> dict[str, Any] | None:
    """The network context, without the fields the source lacks (None if it has none)."""
    fields = {"ip": text(ip), "country": country_code(text(country)), "device_id": text(device),
              "user_agent": text(agent)}
    limits = {"ip": 64, "device_id": 128, "user_agent": 512}
    out = {k: v[: limits.get(k, 8)] for k, v in fields.items() if v is not None}
    return out or None


def _base(kind: str, fmt: str, rid: str, ts: str, part: str | int | None, src: dict[str, Any] | None,
          outcome: str) -> dict[str, Any]:
    doc: dict[str, Any] = {"type": kind, "event_id": event_id(fmt, rid, part), "ts": ts, "outcome": outcome,
                           "provenance": {"format": fmt, "record_id": rid}}
    if src:
        doc["source"] = src
    return doc


def access(fmt: str, rid: str, ts: str, who: dict[str, Any], action: str, resource: dict[str, Any],
           outcome: str = "allowed", src: dict[str, Any] | None = None, part: str | int | None = None,
           **counts: int | None) -> dict[str, Any]:
    """An access event; ``counts`` are ``records``, ``bytes``, ``subjects`` when the source gives them."""
    doc = _base("access", fmt, rid, ts, part, src, outcome)
    doc.update(principal=who, action=action, resource=resource)
    doc.update({k: int(v) for k, v in counts.items() if v is not None and v >= 0})
    return doc


def permission(fmt: str, rid: str, ts: str, actor: dict[str, Any], target: dict[str, Any], change: str,
               perm: str, resource: dict[str, Any] | None = None, outcome: str = "allowed",
               src: dict[str, Any] | None = None, part: str | int | None = None) -> dict[str, Any]:
    """A permission event (``privileged`` is decided by the pipeline's configured patterns)."""
    doc = _base("permission", fmt, rid, ts, part, src, outcome)
    doc.update(actor=actor, target=target, change=change, permission=perm[:256])
    if resource is not None:
        doc["resource"] = resource
    return doc


def authentication(fmt: str, rid: str, ts: str, who: dict[str, Any], outcome: str,
                   src: dict[str, Any] | None = None, method: str | None = None, mfa: bool | None = None,
                   app_id: str | None = None, app_name: str | None = None,
                   failure_reason: str | None = None) -> dict[str, Any]:
    """A sign-in attempt."""
    doc = _base("authentication", fmt, rid, ts, None, src, outcome)
    doc["principal"] = who
    if method:
        doc["method"] = method[:64]
    if mfa is not None:
        doc["mfa"] = mfa
    if app_id or app_name:
        doc["application"] = {k: v[:256] for k, v in (("id", app_id), ("name", app_name)) if v}
    if failure_reason:
        doc["failure_reason"] = failure_reason[:256]
    return doc


def resource(rid: str, kind: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"id": rid[:512]}
    if kind:
        out["kind"] = kind
    return out
