"""Okta System Log events (``docs/ingest/okta.md``): sessions and authentications become sign-ins,
admin privilege grants and revokes and group membership become permission events. Top-level keys are
read whatever their case (some pipelines lower them); ``published`` is UTC, as Okta documents."""

from __future__ import annotations

from typing import Any

from stream.ingest.common import (
    Reject,
    Skip,
    authentication,
    dig,
    obj,
    parse_ts,
    permission,
    principal,
    record_id,
    source,
    text,
)

FORMAT = "okta"
#: eventType -> (method, whether a second factor was verified); mapped as sign-ins
SIGN_INS = {
    "user.session.start": (None, None),
    "user.authentication.sso": ("sso", None),
    "user.authentication.auth_via_mfa": ("mfa", True),
    "user.authentication.auth_via_idp": ("idp", None),
    "user.authentication.auth_via_social": ("social", None),
    "user.authentication.verify": (None, None),
}
PRIVILEGES = {"user.account.privilege.grant": "grant", "user.account.privilege.revoke": "revoke",
              "group.privilege.grant": "grant", "group.privilege.revoke": "revoke"}
MEMBERSHIP = {"group.user_membership.add": "grant", "group.user_membership.remove": "revoke"}
#: outcome.result -> outcome; others (CHALLENGE, SKIPPED, UNKNOWN) are not final
RESULTS = {"SUCCESS": "allowed", "ALLOW": "allowed", "FAILURE": "denied", "DENY": "denied"}


def _who(entry: Any, kind: str | None = None) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise Reject("no_principal", "no actor or target")
    login, oid = text(entry.get("alternateId")), text(entry.get("id"))
    # alternateId is the login (an email for people): the identifier other sources share
    return principal(login if login and login != "unknown" else oid, oid, kind=kind)


def map_record(record: dict[str, Any]) -> list[dict[str, Any]]:
    """One System Log event -> its events (see the module docstring)."""
    top = {k.lower(): v for k, v in record.items()}
    event_type = text(top.get("eventtype"))
    if event_type is None:
        raise Reject("missing_field", "no eventType")
    lowered = event_type.lower()
    if lowered not in SIGN_INS and event_type not in PRIVILEGES and event_type not in MEMBERSHIP:
        raise Skip("not_mapped")
    ts = parse_ts(top.get("published"))
    rid = record_id(record, top.get("uuid"))
    result = text(dig(top, "outcome", "result")) or "SUCCESS"
    outcome = RESULTS.get(result.upper())
    client = obj(top.get("client"))
    src = source(ip=client.get("ipAddress"), country=dig(client, "geographicalContext", "country"),
                 agent=dig(client, "userAgent", "rawUserAgent"))
    actor_type = dig(top, "actor", "type")
    actor = _who(top.get("actor"), kind="service" if actor_type in ("PublicClientApp", "SystemPrincipal") else None)
    targets = [t for t in top.get("target") or [] if isinstance(t, dict)]
    if event_type.lower() in SIGN_INS:
        if outcome is None:
            raise Skip("not_final")
        method, mfa = SIGN_INS[event_type.lower()]
        context = obj(top.get("authenticationcontext"))
        app = next((t for t in targets if t.get("type") == "AppInstance"), None) or {}
        return [authentication(FORMAT, rid, ts, actor, outcome, src,
                               method=text(context.get("credentialType")) or method, mfa=mfa,
                               app_id=text(app.get("id")), app_name=text(app.get("displayName")),
                               failure_reason=text(dig(top, "outcome", "reason")))]
    if outcome is None:
        raise Skip("not_final")
    if outcome == "denied":
        raise Skip("failed_request")
    if event_type in PRIVILEGES:
        return _privileges(top, rid, ts, actor, targets, src, PRIVILEGES[event_type], event_type)
    if event_type in MEMBERSHIP:
        user = next((t for t in targets if t.get("type") == "User"), None)
        group = next((t for t in targets if t.get("type") == "UserGroup"), None)
        name = text((group or {}).get("displayName")) or text((group or {}).get("id"))
        if user is None or name is None:
            raise Reject("missing_field", f"{event_type} without a User and a UserGroup target")
        return [permission(FORMAT, rid, ts, actor, _who(user), MEMBERSHIP[event_type], f"group:{name}",
                           outcome="allowed", src=src)]
    raise Skip("not_mapped")


def _privileges(top: dict[str, Any], rid: str, ts: str, actor: dict[str, Any], targets: list[dict[str, Any]],
                src: dict[str, Any] | None, change: str, event_type: str) -> list[dict[str, Any]]:
    """Okta writes the privileges as one comma-separated string: one event per privilege."""
    data = dig(top, "debugcontext", "debugData") or dig(top, "debugContext", "debugData") or {}
    listed = data.get("privilegeGranted") if change == "grant" else data.get("privilegeRevoked")
    privileges = [p.strip() for p in str(listed or "").split(",") if p.strip()]
    kinds = ("UserGroup",) if event_type.startswith("group.") else ("User",)
    grantee = next((t for t in targets if t.get("type") in kinds), None)
    if grantee is None:
        raise Reject("missing_field", f"{event_type} without a {kinds[0]} target")
    if not privileges:
        field = "privilegeGranted" if change == "grant" else "privilegeRevoked"
        raise Reject("missing_field", f"{event_type} without debugData.{field}")
    return [permission(FORMAT, rid, ts, actor, _who(grantee), change, f"okta:{p}", outcome="allowed", src=src,
                       part=i)
            for i, p in enumerate(privileges)]
