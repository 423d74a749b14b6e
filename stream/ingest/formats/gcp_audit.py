"""GCP Cloud Audit Logs: ``LogEntry`` records whose ``protoPayload`` is an ``AuditLog``
(``docs/ingest/gcp-audit.md``). BigQuery jobs and table reads, Cloud Storage object reads, writes,
deletes and listings and Secret Manager reads become access events; ``SetIamPolicy`` (any service) one
permission event per added or removed member-role pair of its binding delta."""

from __future__ import annotations

import re
from typing import Any

from stream.ingest.common import (
    Reject,
    Skip,
    access,
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

FORMAT = "gcp-audit"
#: google.rpc.Code 7 PERMISSION_DENIED, 16 UNAUTHENTICATED
DENIED_CODES = (7, 16)
#: methodName -> action, for Cloud Storage (``storage.objects.get``; also ``google.storage.objects.get``)
STORAGE = {"objects.get": "download", "objects.list": "query", "objects.create": "write",
           "objects.update": "write", "objects.delete": "delete"}
BQ_TABLE = re.compile(r"projects/([^/]+)/datasets/([^/]+)/tables/([^/]+)")


def map_record(record: dict[str, Any]) -> list[dict[str, Any]]:
    """One LogEntry -> its events (see the module docstring)."""
    payload = record.get("protoPayload")
    if not isinstance(payload, dict):
        raise Reject("missing_field", "no protoPayload (not an audit log entry)")
    method, service = text(payload.get("methodName")), text(payload.get("serviceName"))
    if method is None:
        raise Reject("missing_field", "no protoPayload.methodName")
    short = method.removeprefix("google.")
    iam = method.endswith("SetIamPolicy") or method == "storage.setIamPermissions"
    gcs = service == "storage.googleapis.com" and short.removeprefix("storage.") in STORAGE
    secret = method.endswith("SecretManagerService.AccessSecretVersion")
    if not (iam or gcs or secret or service == "bigquery.googleapis.com"):
        raise Skip("not_mapped")
    ts = parse_ts(record.get("timestamp") or record.get("receiveTimestamp"))
    rid = record_id(record, record.get("insertId"))
    code = dig(payload, "status", "code")
    outcome = "allowed"
    if isinstance(code, int) and code != 0:
        if code not in DENIED_CODES:
            raise Skip("failed_request")
        outcome = "denied"
    email = text(dig(payload, "authenticationInfo", "principalEmail"))
    subject = text(dig(payload, "authenticationInfo", "principalSubject"))
    who = principal(email, subject, kind="service" if email and email.endswith(".gserviceaccount.com") else None)
    src = source(ip=dig(payload, "requestMetadata", "callerIp"),
                 agent=dig(payload, "requestMetadata", "callerSuppliedUserAgent"))
    if iam:
        return _iam(record, payload, rid, ts, who, outcome, src)
    if gcs:
        return [access(FORMAT, rid, ts, who, STORAGE[short.removeprefix("storage.")], _gcs(payload), outcome, src)]
    if service == "bigquery.googleapis.com":
        return _bigquery(payload, rid, ts, who, outcome, src, method)
    name = text(payload.get("resourceName"))
    if not name:
        raise Skip("no_resource")
    return [access(FORMAT, rid, ts, who, "read", resource(f"gcp:{name}", "secret"), outcome, src)]


def _gcs(payload: dict[str, Any]) -> dict[str, Any]:
    """``projects/_/buckets/B/objects/O`` -> ``gs://B/O`` (a bucket alone: ``gs://B``)."""
    name = text(payload.get("resourceName")) or ""
    match = re.match(r"projects/[^/]+/buckets/([^/]+)(?:/objects/(.+))?", name)
    if not match:
        raise Skip("no_resource")
    bucket, obj = match.groups()
    return resource(f"gs://{bucket}/{obj}", "object") if obj else resource(f"gs://{bucket}", "bucket")


def _bigquery(payload: dict[str, Any], rid: str, ts: str, who: dict[str, Any], outcome: str,
              src: dict[str, Any] | None, method: str) -> list[dict[str, Any]]:
    """A query job: one ``query`` per table it referenced (BigQueryAuditMetadata ``jobChange``); a table
    read (``tableDataRead``, ``TableDataService.List``): one ``read``. Tables are ``bq:PROJECT.DATASET.TABLE``."""
    meta = obj(payload.get("metadata"))
    if "tableDataRead" in meta or method.endswith("TableDataService.List") or method == "tabledata.list":
        table = BQ_TABLE.search(text(payload.get("resourceName")) or "")
        if not table:
            raise Skip("no_resource")
        return [access(FORMAT, rid, ts, who, "read", resource("bq:" + ".".join(table.groups()), "table"),
                       outcome, src)]
    if method.endswith("JobService.InsertJob") or method.endswith("jobservice.insert") or "jobChange" in meta:
        stats = dig(meta, "jobChange", "job", "jobStats", "queryStats") or {}
        tables = [t for t in stats.get("referencedTables") or [] if isinstance(t, str)]
        found = [BQ_TABLE.search(t) for t in tables]
        rows = stats.get("outputRowCount")
        records = int(rows) if isinstance(rows, int | str) and str(rows).isdigit() else None
        targets = [resource("bq:" + ".".join(m.groups()), "table") for m in found if m]
        if not targets:
            project = text(dig(payload, "resourceName")) or ""
            match = re.match(r"projects/([^/]+)", project)
            if not match:
                raise Skip("no_resource")
            targets = [resource(f"bq:{match.group(1)}", "project")]
        return [access(FORMAT, rid, ts, who, "query", res, outcome, src, part=(i if len(targets) > 1 else None),
                       records=records)
                for i, res in enumerate(targets)]
    raise Skip("not_mapped")


def _member(member: str) -> dict[str, Any]:
    """An IAM member (``user:a@b``, ``serviceAccount:x``, ``group:g``, ``allUsers``) as a principal."""
    kind, _, name = member.partition(":")
    if not name:  # allUsers, allAuthenticatedUsers: the public
        return principal(member)
    return principal(name, member, kind="service" if kind == "serviceAccount" else None)


def _iam(record: dict[str, Any], payload: dict[str, Any], rid: str, ts: str, actor: dict[str, Any],
         outcome: str, src: dict[str, Any] | None) -> list[dict[str, Any]]:
    """One event per binding delta: ADD is a grant, REMOVE a revoke of ``role`` on the resource."""
    deltas = (dig(payload, "serviceData", "policyDelta", "bindingDeltas")
              or dig(payload, "metadata", "datasetChange", "bindingDeltas")
              or dig(payload, "metadata", "tableChange", "bindingDeltas"))
    if not isinstance(deltas, list) or not deltas:
        raise Skip("no_binding_delta")
    where = text(payload.get("resourceName")) or text(dig(record, "resource", "labels", "project_id")) or ""
    scope = resource(f"gcp:{where}", dig(record, "resource", "type")) if where else None
    events = []
    for i, delta in enumerate(deltas):
        action, role, member = (text(dig(delta, k)) for k in ("action", "role", "member"))
        if action not in ("ADD", "REMOVE") or not role or not member:
            raise Reject("bad_binding_delta", f"binding delta {i} lacks action, role or member")
        events.append(permission(FORMAT, rid, ts, actor, _member(member), "grant" if action == "ADD" else "revoke",
                                 role, scope, outcome, src, part=i))
    return events
