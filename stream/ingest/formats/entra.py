"""Microsoft Entra ID (Azure AD) sign-in and audit logs, and Exchange ``MailItemsAccessed``
(``docs/ingest/entra.md``), in the shapes they are exported in: Microsoft Graph objects (``signIn``,
``directoryAudit``), Azure Monitor diagnostic records (``category`` + ``properties``), Log Analytics /
Sentinel rows (``SigninLogs``, ``AuditLogs``, ``OfficeActivity``: PascalCase, nested objects as JSON
strings) and the Office 365 Management Activity API. :func:`normalise` turns each into Graph's shape;
sign-ins are mapped here, directory audits in :mod:`.entra_audit`."""

from __future__ import annotations

from typing import Any

import orjson

from stream.ingest.common import (
    Reject,
    Skip,
    access,
    authentication,
    dig,
    parse_ts,
    principal,
    record_id,
    resource,
    seq,
    source,
    text,
)
from stream.ingest.formats import entra_audit

FORMAT = "entra"
SIGN_IN_CATEGORIES = frozenset({"signinlogs", "noninteractiveusersigninlogs", "serviceprincipalsigninlogs",
                                "managedidentitysigninlogs", "aadnoninteractiveusersigninlogs",
                                "aadserviceprincipalsigninlogs", "aadmanagedidentitysigninlogs"})
#: Log Analytics columns whose Graph names are not just the first letter lowered
RENAMED = {"IPAddress": "ipAddress", "TimeGenerated": "timeGenerated"}
#: Graph properties that Log Analytics rows carry as JSON text
NESTED = ("initiatedBy", "targetResources", "status", "deviceDetail", "location", "additionalDetails",
          "authenticationDetails", "Folders", "OperationProperties")


def _graph_case(row: dict[str, Any]) -> dict[str, Any]:
    out = {RENAMED.get(k, k[:1].lower() + k[1:]): v for k, v in row.items()}
    for key in NESTED:
        for name in (key, key[:1].lower() + key[1:]):
            value = out.get(name)
            if isinstance(value, str) and value[:1] in "[{":
                try:
                    out[name] = orjson.loads(value)
                except orjson.JSONDecodeError:
                    raise Reject("malformed_json", f"{name} holds text that is not JSON") from None
    return out


def normalise(record: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(kind: ``signin``, ``audit`` or ``mail``; the Graph-shaped properties; the record's top level with
    lower-case keys). Exports disagree on the case of top-level keys (Panther lowers some)."""
    top = {k.lower(): v for k, v in record.items()}
    if "operation" in top and ("workload" in top or "officeworkload" in top or "recordtype" in top):
        return "mail", _graph_case(record), top
    props = top.get("properties")
    if isinstance(props, dict):
        props = _graph_case(props)
        category = str(top.get("category") or "").lower()
        return ("signin" if category in SIGN_IN_CATEGORIES else "audit"), props, top
    props = _graph_case(record)
    table = str(top.get("type") or "").lower()
    if table in SIGN_IN_CATEGORIES or ("createdDateTime" in props and "activityDisplayName" not in props):
        return "signin", props, top
    if "activityDisplayName" in props or "operationName" in props:
        return "audit", props, top
    raise Reject("unknown_shape", "neither a sign-in, a directory audit nor an Office 365 activity record")


def map_record(record: dict[str, Any]) -> list[dict[str, Any]]:
    """One Entra record -> its events (see the module docstring)."""
    kind, props, top = normalise(record)
    if kind == "mail":
        return _mail(props, record)
    if kind == "signin":
        return [_sign_in(props, top, record)]
    return entra_audit.map_audit(props, top, record)


def _sign_in(props: dict[str, Any], top: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    ts = parse_ts(props.get("createdDateTime") or top.get("time") or props.get("timeGenerated"))
    rid = record_id(record, props.get("id") or top.get("correlationid"))
    user = text(props.get("userPrincipalName")) or text(props.get("userId"))
    if user:
        who = principal(user, text(props.get("userId")), text(props.get("userPrincipalName")))
    else:  # a service principal or managed identity signing in with its own credentials
        who = principal(text(props.get("servicePrincipalId")), text(props.get("servicePrincipalName")),
                        text(props.get("appId")), kind="service")
    code = dig(props, "status", "errorCode")
    code = code if code is not None else top.get("resulttype")
    if code is None:
        raise Reject("missing_field", "sign-in without status.errorCode or resultType")
    requirement = text(props.get("authenticationRequirement"))
    mfa = {"multiFactorAuthentication": True, "singleFactorAuthentication": False}.get(requirement or "")
    method = text(dig(props, "authenticationDetails", 0, "authenticationMethod")) or text(
        props.get("authenticationProtocol")) or text(props.get("clientAppUsed"))
    src = source(ip=props.get("ipAddress") or top.get("calleripaddress"),
                 country=dig(props, "location", "countryOrRegion"),
                 device=dig(props, "deviceDetail", "deviceId"), agent=props.get("userAgent"))
    return authentication(FORMAT, rid, ts, who, "allowed" if str(code) == "0" else "denied", src, method=method,
                          mfa=mfa, app_id=text(props.get("appId")), app_name=text(props.get("appDisplayName")),
                          failure_reason=text(dig(props, "status", "failureReason")))


def _mail(props: dict[str, Any], record: dict[str, Any]) -> list[dict[str, Any]]:
    """Exchange ``MailItemsAccessed``: a read of the mailbox, by the application when one is named
    (``ClientAppId``: app access, delegated or not), else by the signed-in user; ``records`` is the
    number of messages listed in ``Folders``."""
    if props.get("operation") != "MailItemsAccessed":
        raise Skip("not_mapped")
    ts = parse_ts(props.get("creationTime") or props.get("timeGenerated"))
    rid = record_id(record, props.get("id") or props.get("officeId") or props.get("sourceRecordId"))
    app, user = text(props.get("clientAppId")), text(props.get("userId"))
    who = principal(app, kind="service") if app else principal(user)
    owner = text(props.get("mailboxOwnerUPN")) or text(props.get("mailboxGuid"))
    if not owner:
        raise Skip("no_resource")
    folders = seq(props.get("folders"))
    items = sum(len(f.get("FolderItems") or []) for f in folders if isinstance(f, dict))
    status = text(props.get("resultStatus")) or "Succeeded"
    return [access(FORMAT, rid, ts, who, "read", resource(f"mailbox:{owner}", "mailbox"),
                   "allowed" if status.lower() in ("succeeded", "true", "success") else "denied",
                   source(ip=props.get("client_IPAddress") or props.get("clientIPAddress")),
                   records=items if folders else None)]
