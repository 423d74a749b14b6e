"""Kubernetes audit events, ``audit.k8s.io/v1`` (``docs/ingest/k8s-audit.md``), as the API server writes
them and as EKS (CloudWatch) and AKS (Azure diagnostic ``properties.log``) export them: reads and
listings of secrets and configmaps become access events, RoleBinding and ClusterRoleBinding creation
and replacement one permission event per subject."""

from __future__ import annotations

from typing import Any

import orjson

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
    seq,
    source,
    text,
)

FORMAT = "k8s-audit"
READS = {"get": "read", "list": "query", "watch": "query"}
DATA = frozenset({"secrets", "configmaps"})
BINDINGS = frozenset({"rolebindings", "clusterrolebindings"})
#: stages that close a request; an event without a stage is taken as closed (exports that drop it)
FINAL = frozenset({"ResponseComplete", "Panic"})


def _unwrap(record: dict[str, Any]) -> dict[str, Any]:
    """AKS diagnostic records carry the audit event as JSON text in ``properties.log``."""
    log = dig(record, "properties", "log")
    if isinstance(log, str):
        try:
            inner = orjson.loads(log)
        except orjson.JSONDecodeError:
            raise Reject("malformed_json", "properties.log is not JSON") from None
        return obj(inner)
    return record


def who(event: dict[str, Any]) -> dict[str, Any]:
    """The user, with its EKS IAM ARN (``user.extra.arn``) as an alias, so that an IAM principal is the
    same principal in CloudTrail and in the cluster; service accounts and nodes are ``kind: service``."""
    user = event.get("impersonatedUser") if isinstance(event.get("impersonatedUser"), dict) else event.get("user")
    name = text(dig(user, "username"))
    arns = dig(user, "extra", "arn")
    arn = text(arns[0]) if isinstance(arns, list) and arns else None
    machine = bool(name and name.startswith(("system:serviceaccount:", "system:node:", "system:kube-")))
    return principal(name, arn, text(dig(user, "uid")), kind="service" if machine else None)


def map_record(record: dict[str, Any]) -> list[dict[str, Any]]:
    """One audit event -> its events (see the module docstring)."""
    event = _unwrap(record)
    verb = text(event.get("verb"))
    if verb is None or not isinstance(event.get("user"), dict):
        raise Reject("missing_field", "no verb or user (not an audit event)")
    stage = text(event.get("stage"))
    if stage is not None and stage not in FINAL:
        raise Skip("not_final_stage")
    ref = obj(event.get("objectRef"))
    kind = text(ref.get("resource"))
    reading = kind in DATA and verb in READS and not text(ref.get("subresource"))
    if not (reading or (kind in BINDINGS and verb in ("create", "update"))):
        raise Skip("not_mapped")
    ts = parse_ts(event.get("requestReceivedTimestamp") or event.get("stageTimestamp"))
    rid = record_id(event, event.get("auditID"))
    code = dig(event, "responseStatus", "code")
    outcome = "allowed"
    if isinstance(code, int) and code >= 400:
        if code not in (401, 403):
            raise Skip("failed_request")
        outcome = "denied"
    ips = seq(event.get("sourceIPs"))
    src = source(ip=ips[0] if ips else None, agent=event.get("userAgent"))
    if reading:
        return [access(FORMAT, rid, ts, who(event), READS[verb], _object(ref, kind or ""), outcome, src)]
    return _binding(event, rid, ts, ref, kind or "", outcome, src)


def _object(ref: dict[str, Any], kind: str) -> dict[str, Any]:
    """``k8s:namespaces/NS/secrets/NAME`` (a listing: without the name; cluster-scoped: without NS)."""
    namespace, name = text(ref.get("namespace")), text(ref.get("name"))
    path = (f"namespaces/{namespace}/" if namespace else "") + kind + (f"/{name}" if name else "")
    return resource(f"k8s:{path}", kind[:-1] if name else kind)


def _binding(event: dict[str, Any], rid: str, ts: str, ref: dict[str, Any], kind: str, outcome: str,
             src: dict[str, Any] | None) -> list[dict[str, Any]]:
    """A binding as created or replaced: one grant of its role to each subject. (A patch or a delete
    names no subjects: who gained or lost the role is not in the event, so it is skipped.)"""
    body = event.get("requestObject") if isinstance(event.get("requestObject"), dict) else None
    body = body or (event.get("responseObject") if isinstance(event.get("responseObject"), dict) else None)
    subjects = [s for s in (body or {}).get("subjects") or [] if isinstance(s, dict)]
    role = dig(body, "roleRef", "name")
    if not subjects or not text(role):
        raise Skip("no_subjects")
    role_kind = text(dig(body, "roleRef", "kind")) or "ClusterRole"
    namespace = text(ref.get("namespace")) or text(dig(body, "metadata", "namespace"))
    scope = resource(f"k8s:namespaces/{namespace}" if namespace and kind == "rolebindings" else "k8s:cluster",
                     "namespace" if kind == "rolebindings" else "cluster")
    actor, events = who(event), []
    for i, subject in enumerate(subjects):
        name, skind = text(subject.get("name")), subject.get("kind")
        if not name:
            raise Reject("missing_field", f"binding subject {i} has no name")
        if skind == "ServiceAccount":
            sa_ns = text(subject.get("namespace")) or namespace or "default"
            target = principal(f"system:serviceaccount:{sa_ns}:{name}", kind="service")
        else:
            target = principal(name if skind != "Group" else f"group:{name}")
        events.append(permission(FORMAT, rid, ts, actor, target, "grant", f"{role_kind}/{role}", scope, outcome,
                                 src, part=i))
    return events
