"""OCSF 1.x events (``docs/ingest/ocsf.md``) by ``class_uid``: Authentication (3002) becomes a sign-in;
User Access Management (3005), Group Management (3006) and Account Change policy attach/detach (3001)
permission events; Datastore (6005), File Hosting (6006), File System (1001) and API Activity (6003)
with resources access events. Other classes (network, DNS, findings, ...) are skipped."""

from __future__ import annotations

from typing import Any

from stream.ingest.common import (
    Reject,
    Skip,
    access,
    authentication,
    dig,
    obj,
    parse_ts,
    permission,
    principal,
    record_id,
    resource,
    source,
    text,
)

FORMAT = "ocsf"
#: (class_uid, activity_id) -> action
ACCESS = {
    (6005, 2): "read", (6005, 3): "write", (6005, 4): "delete", (6005, 6): "query", (6005, 1): "write",
    (6006, 2): "read", (6006, 6): "download", (6006, 7): "write", (6006, 4): "delete", (6006, 8): "share",
    (1001, 2): "read", (1001, 1): "write", (1001, 3): "write", (1001, 4): "delete",
    (6003, 2): "read", (6003, 1): "write", (6003, 3): "write", (6003, 4): "delete",
}


def _user(user: Any, kind: str | None = None) -> dict[str, Any]:
    if not isinstance(user, dict):
        raise Reject("no_principal", "no user")
    uid, name, email = text(user.get("uid")), text(user.get("name")), text(user.get("email_addr"))
    service = user.get("type_id") == 3 or user.get("type") == "System"
    return principal(email or name or uid, uid, name, kind="service" if service else kind)


def _outcome(record: dict[str, Any]) -> str:
    """status_id 1 Success, 2 Failure; others (0 Unknown, 99 Other) are not final."""
    status = record.get("status_id")
    if status == 1:
        return "allowed"
    if status == 2:
        return "denied"
    raise Skip("not_final")


def _src(record: dict[str, Any]) -> dict[str, Any] | None:
    return source(ip=dig(record, "src_endpoint", "ip"), country=dig(record, "src_endpoint", "location", "country"),
                  device=dig(record, "device", "uid"),
                  agent=dig(record, "http_request", "user_agent") or dig(record, "src_endpoint", "svc_name"))


def map_record(record: dict[str, Any]) -> list[dict[str, Any]]:
    """One OCSF event -> its events (see the module docstring)."""
    cls, activity = record.get("class_uid"), record.get("activity_id")
    if not isinstance(cls, int):
        raise Reject("missing_field", "no class_uid")
    ts = parse_ts(record.get("time") if record.get("time") is not None else record.get("time_dt"))
    rid = record_id(record, dig(record, "metadata", "uid"))
    if cls == 3002:
        if activity != 1:
            raise Skip("not_mapped")  # only logons; logoffs and ticket traffic are not sign-ins
        service = obj(record.get("service"))
        subject = record.get("user") if isinstance(record.get("user"), dict) else dig(record, "actor", "user")
        return [authentication(FORMAT, rid, ts, _user(subject), _outcome(record), _src(record),
                               method=text(record.get("auth_protocol")),
                               mfa=record.get("is_mfa") if isinstance(record.get("is_mfa"), bool) else None,
                               app_id=text(service.get("uid")), app_name=text(service.get("name")),
                               failure_reason=text(record.get("status_detail")))]
    action = ACCESS.get((cls, activity)) if isinstance(activity, int) else None
    if action is not None:
        return _access(record, rid, ts, cls, action)
    if cls in (3005, 3006, 3001):
        return _permission(record, rid, ts, cls, activity)
    raise Skip("not_mapped")


def _access(record: dict[str, Any], rid: str, ts: str, cls: int, action: str) -> list[dict[str, Any]]:
    if cls == 6005:
        db, table = dig(record, "database", "name"), dig(record, "table", "name")
        bucket = dig(record, "databucket", "name")
        names = [f"{db}.{table}" if db and table else db or bucket]
    elif cls in (6006, 1001):
        names = [dig(record, "file", "path") or dig(record, "file", "name")]
    else:
        names = [r.get("uid") or r.get("name") for r in record.get("resources") or [] if isinstance(r, dict)]
    names = [n for n in names if text(n)]
    if not names:
        raise Skip("no_resource")
    who = _user(dig(record, "actor", "user"))
    outcome, src = _outcome(record), _src(record)
    return [access(FORMAT, rid, ts, who, action, resource(n), outcome, src, part=(i if len(names) > 1 else None))
            for i, n in enumerate(names)]


def _permission(record: dict[str, Any], rid: str, ts: str, cls: int, activity: Any) -> list[dict[str, Any]]:
    actor, outcome = _user(dig(record, "actor", "user")), _outcome(record)
    if outcome == "denied":
        raise Skip("failed_request")
    if cls == 3005 and activity in (1, 2):
        change = "grant" if activity == 1 else "revoke"
        perms = [p for p in record.get("privileges") or [] if text(p)]
        res = dig(record, "resource", "uid") or dig(record, "resource", "name")
    elif cls == 3006 and activity in (3, 4):
        change = "grant" if activity == 3 else "revoke"
        group = dig(record, "group", "name") or dig(record, "group", "uid")
        perms, res = ([f"group:{group}"] if text(group) else []), None
    elif cls == 3001 and activity in (7, 8):
        change = "grant" if activity == 7 else "revoke"
        policy = dig(record, "policy", "name") or dig(record, "policy", "uid")
        perms, res = ([f"policy:{policy}"] if text(policy) else []), None
    else:
        raise Skip("not_mapped")
    if not perms:
        raise Reject("missing_field", "a permission change that names no privilege, group or policy")
    target = _user(record.get("user"))
    scope = resource(str(res)) if text(res) else None
    return [permission(FORMAT, rid, ts, actor, target, change, str(p), scope, "allowed", _src(record), part=i)
            for i, p in enumerate(perms)]
