"""AWS CloudTrail records (``docs/ingest/cloudtrail.md``): S3 object data events, Athena and Redshift Data
API queries, Secrets Manager and KMS reads; IAM policy, group, access-key and role-trust changes;
console sign-ins. Everything else is skipped as ``not_mapped``."""

from __future__ import annotations

import re
from typing import Any

import orjson

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

FORMAT = "cloudtrail"
#: error codes that mean "not allowed" (the request was refused); any other error: the access failed
DENIED = re.compile(r"AccessDenied|Unauthorized|Forbidden|NotAuthorized", re.IGNORECASE)
#: EC2 instance-profile sessions are named after the instance (AWS: "the role session name is the
#: instance ID")
INSTANCE_ID = re.compile(r"^i-[0-9a-f]{8,17}$")

#: (eventSource, eventName) -> (action, how the resource is found)
ACCESS = {
    ("s3.amazonaws.com", "GetObject"): ("download", "s3_object"),
    ("s3.amazonaws.com", "SelectObjectContent"): ("query", "s3_object"),
    ("s3.amazonaws.com", "PutObject"): ("write", "s3_object"),
    ("s3.amazonaws.com", "CopyObject"): ("write", "s3_object"),
    ("s3.amazonaws.com", "CompleteMultipartUpload"): ("write", "s3_object"),
    ("s3.amazonaws.com", "DeleteObject"): ("delete", "s3_object"),
    ("s3.amazonaws.com", "DeleteObjects"): ("delete", "s3_bucket"),
    ("s3.amazonaws.com", "ListObjects"): ("query", "s3_bucket"),
    ("s3.amazonaws.com", "ListObjectsV2"): ("query", "s3_bucket"),
    ("s3.amazonaws.com", "ListObjectVersions"): ("query", "s3_bucket"),
    ("athena.amazonaws.com", "StartQueryExecution"): ("query", "athena"),
    ("redshift-data.amazonaws.com", "ExecuteStatement"): ("query", "redshift"),
    ("redshift-data.amazonaws.com", "BatchExecuteStatement"): ("query", "redshift"),
    ("secretsmanager.amazonaws.com", "GetSecretValue"): ("read", "secret"),
    ("secretsmanager.amazonaws.com", "BatchGetSecretValue"): ("read", "secrets"),
    ("kms.amazonaws.com", "Decrypt"): ("read", "kms_key"),
}
#: IAM eventName -> (change, the request parameter naming the target, its kind, the permission)
POLICY_CHANGES = {
    "AttachUserPolicy": ("grant", "userName", "user", "policyArn"),
    "AttachRolePolicy": ("grant", "roleName", "role", "policyArn"),
    "AttachGroupPolicy": ("grant", "groupName", "group", "policyArn"),
    "DetachUserPolicy": ("revoke", "userName", "user", "policyArn"),
    "DetachRolePolicy": ("revoke", "roleName", "role", "policyArn"),
    "DetachGroupPolicy": ("revoke", "groupName", "group", "policyArn"),
    "PutUserPolicy": ("grant", "userName", "user", "policyName"),
    "PutRolePolicy": ("grant", "roleName", "role", "policyName"),
    "PutGroupPolicy": ("grant", "groupName", "group", "policyName"),
    "DeleteUserPolicy": ("revoke", "userName", "user", "policyName"),
    "DeleteRolePolicy": ("revoke", "roleName", "role", "policyName"),
    "DeleteGroupPolicy": ("revoke", "groupName", "group", "policyName"),
}
#: every IAM event mapped
IAM_EVENTS = frozenset({*POLICY_CHANGES, "AddUserToGroup", "RemoveUserFromGroup", "CreateAccessKey", "DeleteAccessKey",
                        "UpdateAssumeRolePolicy"})


def map_record(record: dict[str, Any]) -> list[dict[str, Any]]:
    """One CloudTrail record -> its events (see the module docstring)."""
    name, service = text(record.get("eventName")), text(record.get("eventSource"))
    if name is None or service is None:
        raise Reject("missing_field", "no eventName or eventSource")
    login = service == "signin.amazonaws.com" and name == "ConsoleLogin"
    if not (login or (service, name) in ACCESS or (service == "iam.amazonaws.com" and name in IAM_EVENTS)):
        raise Skip("not_mapped")
    # eventTime is CloudTrail's; exports through Logstash/Elastic keep only @timestamp (OTRF's)
    ts = parse_ts(record.get("eventTime") or record.get("@timestamp"))
    rid = record_id(record, record.get("eventID"))
    identity = record.get("userIdentity")
    if not isinstance(identity, dict):
        raise Reject("missing_field", "no userIdentity")
    if login:
        return [_console_login(record, rid, ts, identity)]
    error = text(record.get("errorCode"))
    outcome = "allowed"
    if error is not None:
        if not DENIED.search(error):
            raise Skip("failed_request")
        outcome = "denied"
    if (service, name) in ACCESS:
        return _access(record, rid, ts, identity, ACCESS[service, name], outcome)
    return _iam(record, rid, ts, identity, name, outcome)


def who(identity: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """The principal: every identifier of the identity, most specific first, for the directory to
    resolve; with no directory, the IAM user, role (not the session: session names change), root or
    federated ARN. Machine credentials (an EC2 instance profile, a call an AWS service makes) are
    ``kind: service``; otherwise the kind is left to the directory."""
    kind_name = identity.get("type")
    arn, key = text(identity.get("arn")), text(identity.get("accessKeyId"))
    if kind_name == "AssumedRole":
        issuer = text(dig(identity, "sessionContext", "sessionIssuer", "arn"))
        session = arn.rsplit("/", 1)[-1] if arn and arn.count("/") >= 2 else None
        machine = (dig(identity, "sessionContext", "ec2RoleDelivery") is not None
                   or bool(session and INSTANCE_ID.match(session)) or identity.get("invokedBy") is not None)
        return principal(issuer, arn, session, key, kind="service" if machine else None)
    if kind_name == "AWSService":
        return principal(text(identity.get("invokedBy")), kind="service")
    if kind_name in ("IAMUser", "Root", "FederatedUser", "SAMLUser", "WebIdentityUser", "IdentityCenterUser"):
        return principal(arn, text(identity.get("userName")), text(dig(identity, "onBehalfOf", "userId")),
                         text(identity.get("principalId")), key)
    account = text(identity.get("accountId")) or text(record.get("recipientAccountId"))
    return principal(arn, text(identity.get("principalId")), f"aws-account:{account}" if account else None, key)


def _source(record: dict[str, Any], identity: dict[str, Any]) -> dict[str, Any] | None:
    session = (text(identity.get("arn")) or "").rsplit("/", 1)[-1]
    device = session if INSTANCE_ID.match(session) else None  # the instance whose credentials these are
    return source(ip=record.get("sourceIPAddress"), device=device, agent=record.get("userAgent"))


def _access(record: dict[str, Any], rid: str, ts: str, identity: dict[str, Any], how: tuple[str, str],
            outcome: str) -> list[dict[str, Any]]:
    action, locate = how
    params = obj(record.get("requestParameters"))
    targets = _resources(record, params, locate)
    if not targets:
        raise Skip("no_resource")
    out_bytes = dig(record, "additionalEventData", "bytesTransferredOut")
    nbytes = int(out_bytes) if isinstance(out_bytes, int | float) and action == "download" else None
    actor, src = who(identity, record), _source(record, identity)
    return [access(FORMAT, rid, ts, actor, action, res, outcome, src, part=(i if len(targets) > 1 else None),
                   bytes=nbytes)
            for i, res in enumerate(targets)]


def _resources(record: dict[str, Any], params: dict[str, Any], locate: str) -> list[dict[str, Any]]:
    """The resources an access touched, from ``resources`` when CloudTrail lists them, else from the
    request parameters."""
    listed = [r for r in record.get("resources") or [] if isinstance(r, dict)]
    if locate == "s3_object":
        arns = [r["ARN"] for r in listed if r.get("type") == "AWS::S3::Object" and text(r.get("ARN"))]
        bucket, key = text(params.get("bucketName")), text(params.get("key"))
        if not arns and bucket and key:
            arns = [f"arn:aws:s3:::{bucket}/{key}"]
        return [resource(a, "object") for a in arns]
    if locate == "s3_bucket":
        arns = [r["ARN"] for r in listed if r.get("type") == "AWS::S3::Bucket" and text(r.get("ARN"))]
        bucket = text(params.get("bucketName"))
        return [resource(arns[0] if arns else f"arn:aws:s3:::{bucket}", "bucket")] if arns or bucket else []
    if locate == "athena":
        database = text(dig(params, "queryExecutionContext", "database"))
        catalog = text(dig(params, "queryExecutionContext", "catalog")) or "AwsDataCatalog"
        if database:
            return [resource(f"athena:{catalog}.{database}", "database")]
        group = text(params.get("workGroup"))
        return [resource(f"athena:workgroup/{group}", "workgroup")] if group else []
    if locate == "redshift":
        where = text(params.get("clusterIdentifier")) or text(params.get("workgroupName"))
        database = text(params.get("database"))
        if not where:
            return []
        return [resource(f"redshift:{where}/{database}" if database else f"redshift:{where}", "database")]
    if locate in ("secret", "secrets"):
        ids = [params.get("secretId")] if locate == "secret" else list(params.get("secretIdList") or [])
        return [resource(str(s), "secret") for s in ids if text(s)]
    arns = [r["ARN"] for r in listed if text(r.get("ARN"))]  # kms_key
    key_id = text(params.get("keyId"))
    return [resource(arns[0] if arns else key_id or "", "kms-key")] if arns or key_id else []


def _iam(record: dict[str, Any], rid: str, ts: str, identity: dict[str, Any], name: str,
         outcome: str) -> list[dict[str, Any]]:
    params = obj(record.get("requestParameters"))
    actor, src = who(identity, record), source(ip=record.get("sourceIPAddress"), agent=record.get("userAgent"))
    account = text(record.get("recipientAccountId")) or text(identity.get("accountId"))
    if name in POLICY_CHANGES:
        change, target_key, kind, perm_key = POLICY_CHANGES[name]
        target, perm = text(params.get(target_key)), text(params.get(perm_key))
        if not target or not perm:
            raise Reject("missing_field", f"{name} without {target_key} or {perm_key}")
        perm = perm if perm_key == "policyArn" else f"inline:{perm}"
        return [permission(FORMAT, rid, ts, actor, _iam_principal(account, kind, target), change, perm,
                           outcome=outcome, src=src)]
    if name in ("AddUserToGroup", "RemoveUserFromGroup"):
        user, group = text(params.get("userName")), text(params.get("groupName"))
        if not user or not group:
            raise Reject("missing_field", f"{name} without userName or groupName")
        change = "grant" if name == "AddUserToGroup" else "revoke"
        return [permission(FORMAT, rid, ts, actor, _iam_principal(account, "user", user), change,
                           f"group:{group}", outcome=outcome, src=src)]
    if name in ("CreateAccessKey", "DeleteAccessKey"):
        owner = text(params.get("userName"))  # absent: the caller's own key
        grantee = _iam_principal(account, "user", owner) if owner else actor
        change = "grant" if name == "CreateAccessKey" else "revoke"
        return [permission(FORMAT, rid, ts, actor, grantee, change, "credential:access-key", outcome=outcome,
                           src=src)]
    if name == "UpdateAssumeRolePolicy":
        return _trust(record, rid, ts, actor, params, account, outcome, src)
    raise Skip("not_mapped")


def _iam_principal(account: str | None, kind: str, name: str) -> dict[str, Any]:
    """A user, role or group named in an IAM request, as its ARN (what CloudTrail's userIdentity uses)."""
    arn = f"arn:aws:iam::{account}:{kind}/{name}" if account else None
    return principal(arn, name)


def _trust(record: dict[str, Any], rid: str, ts: str, actor: dict[str, Any], params: dict[str, Any],
           account: str | None, outcome: str, src: dict[str, Any] | None) -> list[dict[str, Any]]:
    """A role's new trust policy: one grant of ``assume:<role>`` per AWS principal it lets in. (CloudTrail
    has the new policy only, not the old one: who lost the right is not known.)"""
    role = text(params.get("roleName"))
    try:
        policy = orjson.loads(params.get("policyDocument") or "")
    except (orjson.JSONDecodeError, TypeError):
        raise Reject("bad_policy", "policyDocument is not JSON") from None
    statements = dig(policy, "Statement")
    statements = statements if isinstance(statements, list) else [statements]
    trusted: list[str] = []
    for st in statements:
        if not isinstance(st, dict) or st.get("Effect") != "Allow":
            continue
        aws = dig(st, "Principal", "AWS")
        trusted += [aws] if isinstance(aws, str) else [a for a in aws or [] if isinstance(a, str)]
    if not role or not trusted:
        raise Skip("no_principal_trusted")
    role_arn = f"arn:aws:iam::{account}:role/{role}" if account else role
    return [permission(FORMAT, rid, ts, actor, principal(arn), "grant", f"assume:{role_arn}",
                       resource(role_arn, "role"), outcome, src, part=i)
            for i, arn in enumerate(dict.fromkeys(trusted))]


def _console_login(record: dict[str, Any], rid: str, ts: str, identity: dict[str, Any]) -> dict[str, Any]:
    result = text(dig(record, "responseElements", "ConsoleLogin"))
    if result not in ("Success", "Failure"):
        raise Reject("missing_field", "ConsoleLogin without responseElements.ConsoleLogin")
    mfa_used = text(dig(record, "additionalEventData", "MFAUsed"))
    return authentication(
        FORMAT, rid, ts, who(identity, record), "allowed" if result == "Success" else "denied",
        source(ip=record.get("sourceIPAddress"), agent=record.get("userAgent")),
        method="federated" if identity.get("type") == "AssumedRole" else "password",
        mfa=None if mfa_used is None else mfa_used == "Yes", app_id="signin.amazonaws.com",
        app_name="AWS Management Console", failure_reason=text(record.get("errorMessage")))
