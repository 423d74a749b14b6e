"""Entra ID directory audits that change permissions (``docs/ingest/entra.md``): directory role
membership (PIM included), app role assignments, delegated permission grants as scope differences,
Azure role assignments and group membership. Graph-shaped properties from :func:`.entra.normalise`."""

from __future__ import annotations

from typing import Any

import orjson

from stream.ingest.common import Reject, Skip, dig, parse_ts, permission, principal, record_id, resource, source, text

FORMAT = "entra"
#: activity (lower case) -> (change, what is granted: how to find it)
ACTIVITIES = {
    "add member to role": ("grant", "role"),
    "add eligible member to role": ("grant", "role"),
    "add member to role in pim completed (permanent)": ("grant", "role"),
    "add member to role in pim completed (timebound)": ("grant", "role"),
    "remove member from role": ("revoke", "role"),
    "remove eligible member from role": ("revoke", "role"),
    "add app role assignment to user": ("grant", "app_role"),
    "add app role assignment grant to user": ("grant", "app_role"),
    "add app role assignment to service principal": ("grant", "app_role"),
    "remove app role assignment from user": ("revoke", "app_role"),
    "remove app role assignment from service principal": ("revoke", "app_role"),
    "add member to group": ("grant", "group"),
    "remove member from group": ("revoke", "group"),
    "create role assignment": ("grant", "azure_role"),
    "delete role assignment": ("revoke", "azure_role"),
}


def _modified(targets: list[dict[str, Any]], name: str) -> tuple[Any, Any]:
    """(old, new) of a modified property of any target, JSON-decoded (Entra quotes them)."""
    for target in targets:
        for prop in target.get("modifiedProperties") or []:
            if isinstance(prop, dict) and prop.get("displayName") == name:
                return _unquote(prop.get("oldValue")), _unquote(prop.get("newValue"))
    return None, None


def _unquote(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


def _actor(props: dict[str, Any]) -> dict[str, Any]:
    user, app = dig(props, "initiatedBy", "user"), dig(props, "initiatedBy", "app")
    if isinstance(user, dict) and (user.get("id") or user.get("userPrincipalName")):
        return principal(text(user.get("userPrincipalName")) or text(user.get("id")), text(user.get("id")),
                         text(user.get("userPrincipalName")))
    if isinstance(app, dict):
        return principal(text(app.get("servicePrincipalId")) or text(app.get("appId")), text(app.get("appId")),
                         text(app.get("servicePrincipalId")), text(app.get("displayName")), kind="service")
    raise Reject("no_principal", "initiatedBy names neither a user nor an app")


def _of_type(targets: list[dict[str, Any]], *types: str) -> dict[str, Any] | None:
    return next((t for t in targets if t.get("type") in types), None)


def _grantee(target: dict[str, Any] | None) -> dict[str, Any]:
    if target is None:
        raise Reject("missing_field", "no user or service principal among the targets")
    kind = "service" if target.get("type") == "ServicePrincipal" else None
    return principal(text(target.get("userPrincipalName")) or text(target.get("id")), text(target.get("id")),
                     text(target.get("userPrincipalName")), kind=kind)


def map_audit(props: dict[str, Any], top: dict[str, Any], record: dict[str, Any]) -> list[dict[str, Any]]:
    """One directory audit -> its permission events."""
    activity = (text(props.get("activityDisplayName")) or text(props.get("operationName"))
                or text(top.get("operationname")) or "").strip()
    ts = parse_ts(props.get("activityDateTime") or top.get("time") or props.get("timeGenerated"))
    rid = record_id(record, props.get("id") or top.get("correlationid"))
    result = (text(props.get("result")) or "success").lower()
    if result not in ("success", "succeeded"):
        raise Skip("failed_request")
    targets = [t for t in props.get("targetResources") or [] if isinstance(t, dict)]
    actor = _actor(props)
    src = source(ip=dig(props, "initiatedBy", "user", "ipAddress") or top.get("calleripaddress"))
    lowered = activity.lower()
    if "delegated permission grant" in lowered:
        return _delegated(rid, ts, actor, targets, src, lowered)
    if lowered not in ACTIVITIES:
        raise Skip("not_mapped")
    change, what = ACTIVITIES[lowered]
    if what == "role":
        role = _of_type(targets, "Role")
        name = text(role.get("displayName")) if role else None
        name = name or text(_modified(targets, "Role.DisplayName")[1 if change == "grant" else 0])
        grantee = _grantee(_of_type(targets, "User", "ServicePrincipal"))
        perm = f"role:{name}" if name else None
        scope = None
    elif what == "app_role":
        app = _of_type(targets, "ServicePrincipal")
        value = text(_modified(targets, "AppRole.Value")[1 if change == "grant" else 0])
        grantee = _grantee(_of_type(targets, "User") or app)
        perm = f"app_role:{value}" if value else None
        scope = resource(text(app.get("id")) or "", "application") if app and text(app.get("id")) else None
    elif what == "group":
        name = text(_modified(targets, "Group.DisplayName")[1 if change == "grant" else 0])
        grantee = _grantee(_of_type(targets, "User", "ServicePrincipal"))
        perm = f"group:{name}" if name else None
        scope = None
    else:  # azure_role: Azure RBAC, role name and scope in additionalDetails
        details = {d.get("key"): d.get("value") for d in props.get("additionalDetails") or [] if isinstance(d, dict)}
        grantee = _grantee(_of_type(targets, "User", "ServicePrincipal", "Group"))
        perm = f"azure_role:{details['RoleName']}" if text(details.get("RoleName")) else None
        scope = resource(f"azure:{details['Scope']}", "scope") if text(details.get("Scope")) else None
    if perm is None:
        raise Reject("missing_field", f"{activity!r} without the role, app role or group it assigns")
    return [permission(FORMAT, rid, ts, actor, grantee, change, perm, scope, "allowed", src)]


def _delegated(rid: str, ts: str, actor: dict[str, Any], targets: list[dict[str, Any]], src: dict[str, Any] | None,
               activity: str) -> list[dict[str, Any]]:
    """A delegated permission grant as the difference of its scopes: one grant per scope added, one
    revoke per scope removed (``"User.Read" -> "User.Read Mail.ReadWrite"`` grants ``Mail.ReadWrite``).
    The grantee is the client service principal (``ServicePrincipal.ObjectID``); the resource is the API
    (the first target, e.g. Microsoft Graph)."""
    old, new = _modified(targets, "DelegatedPermissionGrant.Scope")
    if "remove" in activity and new is None:
        old, new = old, ""
    before, after = set(str(old or "").split()), set(str(new or "").split())
    client = text(_modified(targets, "ServicePrincipal.ObjectID")[1])
    if client is None:
        second = targets[1] if len(targets) > 1 else None
        client = text(second.get("id")) if second else None
    if client is None:
        raise Reject("missing_field", "delegated permission grant without the client service principal")
    api = targets[0] if targets else {}
    scope = resource(text(api.get("id")) or "unknown-api", "api") if text(api.get("id")) else None
    name = text(api.get("displayName")) or text(api.get("id")) or "api"
    changes = [("grant", s) for s in sorted(after - before)] + [("revoke", s) for s in sorted(before - after)]
    if not changes:
        raise Skip("no_scope_change")
    return [permission(FORMAT, rid, ts, actor, principal(client, kind="service"), change, f"delegated:{name}/{s}",
                       scope, "allowed", src, part=f"{change}:{s}")
            for change, s in changes]
