"""``privwatch simulate --format cloudtrail``: the simulated organisation as raw AWS CloudTrail records,
with the people directory, data catalog and ingest settings that go with them, so that
``simulate -> ingest -> evaluate`` measures detection through the adapter.

CloudTrail cannot say everything the contract can: it has no row counts, data subjects, countries,
laptops or change tickets, and no resource scope on an IAM policy attachment. So each simulated event is
first *projected* onto what CloudTrail expresses (:func:`project`), then written as the record that
says exactly that (:func:`render`): tables become Athena queries (one database each), buckets and APIs
S3 objects (APIs have no CloudTrail data events: an API's reads are rendered as reads of a bucket
named after it), people IAM users, services EC2 instance roles, grants policy attachments. The
projected events are the world both ways score (``docs/evaluation.md``): straight, and through
``privwatch ingest``.
"""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from stream.simulate.output import write_jsonl

ACCOUNT = "123456789012"
#: the policies that rendered privileged grants attach (ingest's privileged_permissions for this world)
PRIVILEGED_POLICIES = f"arn:aws:iam::{ACCOUNT}:policy/role-*"
S3_ACTIONS = {"read": ("GetObject", "download"), "download": ("GetObject", "download"),
              "export": ("GetObject", "download"), "share": ("GetObject", "download"),
              "write": ("PutObject", "write"), "delete": ("DeleteObject", "delete"), "query": ("ListObjects", "query")}


def _arn(doc: dict[str, Any]) -> str:
    kind = "role" if doc.get("kind") == "service" else "user"
    return f"arn:aws:iam::{ACCOUNT}:{kind}/{doc['id']}"


def _instance(device: str) -> str:
    """An EC2 instance id standing for a service's host (the session name of its instance role)."""
    return "i-" + hashlib.sha256(device.encode()).hexdigest()[:17]


def _bucket(resource_id: str) -> str:
    return resource_id.lower().replace(".", "-").replace("_", "-")


def _resource(res: dict[str, Any], action: str) -> tuple[dict[str, Any], str, str, str]:
    """(resource as ingest names it, eventSource, eventName, contract action) of an access."""
    if res.get("kind") == "table":
        database = res["id"].replace(".", "_")
        return {"id": f"athena:AwsDataCatalog.{database}", "kind": "database"}, "athena", "StartQueryExecution", "query"
    name, mapped = S3_ACTIONS[action]
    bucket = _bucket(res["id"])
    if name == "ListObjects":
        return {"id": f"arn:aws:s3:::{bucket}", "kind": "bucket"}, "s3", name, mapped
    return {"id": f"arn:aws:s3:::{bucket}/data", "kind": "object"}, "s3", name, mapped


def _who(doc: dict[str, Any], src: dict[str, Any] | None) -> dict[str, Any]:
    out = {k: doc[k] for k in ("id", "kind", "department", "role", "admin") if doc.get(k) is not None}
    return out


def project(event: dict[str, Any]) -> dict[str, Any]:
    """The contract event that ingest makes of :func:`render`'s record for ``event``."""
    ts = event["ts"][:19] + ".000Z"
    base = {"type": event["type"], "event_id": f"ct:{event['event_id']}", "ts": ts, "outcome": event["outcome"],
            "provenance": {"format": "cloudtrail", "record_id": event["event_id"]}}
    src = event.get("source") or {}
    who_doc = event["principal"] if event["type"] == "access" else event["actor"]
    source: dict[str, Any] = {"ip": src.get("ip") or "AWS Internal"}
    if who_doc.get("kind") == "service":
        source["device_id"] = _instance(src.get("device_id") or who_doc["id"])
    if src.get("user_agent"):
        source["user_agent"] = src["user_agent"]
    if source:
        base["source"] = source
    if event["type"] == "access":
        res, _, _, action = _resource(event["resource"], event["action"])
        simulated = event["resource"]
        if simulated.get("sensitivity") is not None:  # what the catalog says of it
            res["sensitivity"] = simulated["sensitivity"]
        if simulated.get("categories"):
            res["categories"] = list(simulated["categories"])
        doc = {**base, "principal": _who(event["principal"], src), "action": action, "resource": res}
        if action == "download":
            doc["bytes"] = int(event.get("bytes") or 0)
        return doc
    policy = _policy(event["permission"])
    return {**base, "actor": _who(event["actor"], src), "target": _who(event["target"], src),
            "change": event["change"], "permission": policy,
            "privileged": fnmatch.fnmatchcase(policy, PRIVILEGED_POLICIES)}


def _policy(permission: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:policy/" + permission.replace(":", "-")


def _identity(doc: dict[str, Any], src: dict[str, Any]) -> dict[str, Any]:
    if doc.get("kind") == "service":
        session = _instance(src.get("device_id") or doc["id"])
        return {"type": "AssumedRole", "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/{doc['id']}/{session}",
                "accountId": ACCOUNT, "sessionContext": {
                    "sessionIssuer": {"type": "Role", "arn": _arn(doc), "userName": doc["id"], "accountId": ACCOUNT},
                    "ec2RoleDelivery": "2.0"}}
    return {"type": "IAMUser", "arn": _arn(doc), "accountId": ACCOUNT, "userName": doc["id"]}


def render(event: dict[str, Any]) -> dict[str, Any]:
    """The CloudTrail record of a simulated event (see the module docstring)."""
    src = event.get("source") or {}
    who_doc = event["principal"] if event["type"] == "access" else event["actor"]
    record: dict[str, Any] = {
        "eventVersion": "1.09", "eventTime": event["ts"][:19] + "Z", "eventID": event["event_id"],
        "eventType": "AwsApiCall", "awsRegion": "eu-west-1", "recipientAccountId": ACCOUNT,
        "userIdentity": _identity(who_doc, src), "sourceIPAddress": src.get("ip") or "AWS Internal",
        "userAgent": src.get("user_agent") or "", "readOnly": True}
    if event["outcome"] == "denied":
        record["errorCode"], record["errorMessage"] = "AccessDenied", "Access Denied"
    if event["type"] == "access":
        res, service, name, _ = _resource(event["resource"], event["action"])
        record.update(eventSource=f"{service}.amazonaws.com", eventName=name, eventCategory="Data")
        if service == "athena":
            record["requestParameters"] = {"queryString": "SELECT ...", "queryExecutionContext": {
                "catalog": "AwsDataCatalog", "database": res["id"].split(".", 1)[1]}}
        else:
            bucket, _, key = res["id"].removeprefix("arn:aws:s3:::").partition("/")
            record["requestParameters"] = {"bucketName": bucket, **({"key": key} if key else {})}
            if name == "GetObject":
                record["additionalEventData"] = {"bytesTransferredOut": float(event.get("bytes") or 0)}
        return record
    target = event["target"]
    verb = "Attach" if event["change"] == "grant" else "Detach"
    kind = "Role" if target.get("kind") == "service" else "User"
    record.update(eventSource="iam.amazonaws.com", eventName=f"{verb}{kind}Policy",
                  readOnly=False, requestParameters={f"{kind.lower()}Name": target["id"],
                                                     "policyArn": _policy(event["permission"])})
    return record


def directory(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The people directory of the simulated organisation: each principal with its ARN as an alias."""
    people: dict[str, dict[str, Any]] = {}
    for event in events:
        for role in ("principal", "actor", "target"):
            doc = event.get(role)
            if doc is not None and doc["id"] not in people:
                people[doc["id"]] = {"id": doc["id"], "aliases": [_arn(doc)], "kind": doc.get("kind"),
                                     "department": doc.get("department"), "role": doc.get("role"),
                                     "admin": doc.get("admin")}
    return list(people.values())


def catalog(events: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Exact catalog rules for every rendered resource, from the simulated resources' classification."""
    rules: dict[str, dict[str, Any]] = {}
    for event in events:
        res = event.get("resource")
        if event["type"] != "access" or not res:
            continue
        for action in S3_ACTIONS:
            rid = _resource(res, action)[0]["id"]
            rules.setdefault(rid, {"id": rid, "sensitivity": res.get("sensitivity"),
                                   "categories": list(res.get("categories") or [])})
    return {"rules": list(rules.values())}


def projected_world(events: list[dict[str, Any]], labels: list[dict[str, Any]]
                    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The projected events (in ingest's order: event time, then id) and the labels with their ids."""
    projected = sorted((project(e) for e in events), key=lambda d: (d["ts"], d["event_id"]))
    relabelled = [{**lab, "event_ids": [f"ct:{eid}" for eid in lab.get("event_ids", [])]} for lab in labels]
    return projected, relabelled


def write_cloudtrail(out_dir: Path, events: list[dict[str, Any]], labels: list[dict[str, Any]],
                     info: dict[str, Any]) -> None:
    """``cloudtrail.jsonl`` (raw records), ``directory.jsonl``, ``catalog.json``, ``ingest.toml``,
    ``labels.jsonl`` (event ids as ingest makes them) and ``meta.json`` in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_jsonl(out_dir / "cloudtrail.jsonl", (render(e) for e in events))
    write_jsonl(out_dir / "directory.jsonl", directory(events))
    (out_dir / "catalog.json").write_bytes(orjson.dumps(catalog(events)))
    (out_dir / "ingest.toml").write_text(f'[ingest]\nprivileged_permissions = ["{PRIVILEGED_POLICIES}"]\n')
    _, relabelled = projected_world([], labels)
    write_jsonl(out_dir / "labels.jsonl", relabelled)
    (out_dir / "meta.json").write_bytes(orjson.dumps({**info, "format": "cloudtrail"}, option=orjson.OPT_INDENT_2))
