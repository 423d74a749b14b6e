"""Stream mode against the real broker: mixed raw CloudTrail records -> ingest -> the service -> alerts.
A kill -9 of ingest mid-stream loses nothing; what it produces twice carries the same event_id, and the
engine counts it once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import orjson
import pytest
from kafka_helpers import produce, read_all
from prometheus_client import CollectorRegistry

from stream.ops.metrics import Metrics
from stream.service.service import Service
from stream.settings import Settings

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parent.parent
ROLES = ("access", "permission", "authentication", "alerts", "dead-letter", "feedback", "state", "raw",
         "ingest-dead-letter")
ACCOUNT = "111122223333"


def _record(n: int, name: str, source: str, user: str, params: dict | None = None, **extra) -> dict:
    """A CloudTrail record as AWS writes it (the fields the mapping reads, and a few it does not)."""
    minute, second = divmod(n, 60)
    return {"eventVersion": "1.08", "eventTime": f"2026-10-01T09:{minute % 60:02d}:{second:02d}Z",
            "eventSource": source, "eventName": name, "awsRegion": "eu-west-1", "sourceIPAddress": "198.51.100.7",
            "userAgent": "aws-cli/2.15.0 Python/3.11.6 Linux/6.5 exe/x86_64", "requestParameters": params or {},
            "eventID": f"{uuid.UUID(int=n)}", "eventType": "AwsApiCall", "recipientAccountId": ACCOUNT,
            "userIdentity": {"type": "IAMUser", "arn": f"arn:aws:iam::{ACCOUNT}:user/{user}", "accountId": ACCOUNT,
                             "userName": user, "principalId": f"AIDA{user.upper()}"}, **extra}


def raw_records() -> list[bytes]:
    """Reads of a bucket by two people, console sign-ins, a non-data call, a malformed record, and
    mallory attaching AdministratorAccess to herself (a self-grant: it pages with no history)."""
    out: list[bytes] = []
    for n in range(400):
        user = ("alice", "bob")[n % 2]
        if n % 50 == 7:
            rec = _record(n, "ConsoleLogin", "signin.amazonaws.com", user, responseElements={"ConsoleLogin": "Success"},
                          additionalEventData={"MFAUsed": "Yes"})
        elif n % 50 == 9:
            rec = _record(n, "DescribeInstances", "ec2.amazonaws.com", user)
        else:
            rec = _record(n, "GetObject", "s3.amazonaws.com", user, {"bucketName": "reports", "key": f"r/{n}.csv"})
        out.append(orjson.dumps(rec))
    out.insert(123, b'{"eventName": "GetObject", ')  # cut short
    admin = {"userName": "mallory", "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"}
    out.append(orjson.dumps(_record(400, "AttachUserPolicy", "iam.amazonaws.com", "mallory", admin)))
    return out


def _ingest(bootstrap: str, topics: dict[str, str], group: str, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PRIVWATCH_COMMIT_INTERVAL_MS": "600000"}  # nothing committed before the kill
    args = [sys.executable, "-m", "stream", "ingest", "--format", "cloudtrail", "--from-topic", topics["raw"],
            "--bootstrap-servers", bootstrap, "--group-id", group, "--access-topic", topics["access"],
            "--permission-topic", topics["permission"], "--authentication-topic", topics["authentication"],
            "--dead-letter-topic", topics["ingest-dead-letter"], "--metrics-port", "0", "--max-poll-records", "50",
            *extra]
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _count(bootstrap: str, topic: str) -> int:
    return len(read_all(bootstrap, topic, timeout_s=2.0))


def test_kill_9_of_ingest_loses_nothing_and_duplicates_count_once(kafka_bootstrap, fresh_topics, group_id):
    topics = fresh_topics(n_partitions=3, names=ROLES)
    records = raw_records()
    half = len(records) // 2
    produce(kafka_bootstrap, topics["raw"], records[:half], key=lambda _: None)
    first = _ingest(kafka_bootstrap, topics, group_id)
    deadline = time.monotonic() + 90
    while _count(kafka_bootstrap, topics["access"]) < 100:
        assert first.poll() is None, first.stderr.read().decode() if first.stderr else ""
        assert time.monotonic() < deadline, "ingest produced nothing"
        time.sleep(0.5)
    first.send_signal(signal.SIGKILL)  # mid-stream, with nothing committed yet
    first.wait(timeout=30)
    produce(kafka_bootstrap, topics["raw"], records[half:], key=lambda _: None)
    second = _ingest(kafka_bootstrap, topics, group_id, "--max-idle-s", "5")
    assert second.wait(timeout=120) == 0, second.stderr.read().decode() if second.stderr else ""

    events = [orjson.loads(r.value) for role in ("access", "permission", "authentication")
              for r in read_all(kafka_bootstrap, topics[role])]
    ids = [e["event_id"] for e in events]
    expected = {f"ct:{uuid.UUID(int=n)}" for n in range(401) if n % 50 != 9}
    assert set(ids) == expected, "every mapped record arrived, none invented"
    assert len(ids) > len(expected), "the kill left duplicates (same event_id) behind"
    letters = read_all(kafka_bootstrap, topics["ingest-dead-letter"])
    assert letters and {dict(r.headers)["privwatch.reason"] for r in letters} == {b"malformed_json"}
    for role in ("access", "authentication"):
        assert all(r.key.decode() == orjson.loads(r.value)["principal"]["id"]
                   for r in read_all(kafka_bootstrap, topics[role]))

    settings = Settings(bootstrap_servers=kafka_bootstrap, group_id=f"{group_id}-run", access_topic=topics["access"],
                        permission_topic=topics["permission"], authentication_topic=topics["authentication"],
                        alerts_topic=topics["alerts"], dead_letter_topic=topics["dead-letter"],
                        feedback_topic=topics["feedback"], state_topic=topics["state"], metrics_port=0,
                        commit_interval_ms=200, merge_wait_ms=100, durable_state=False)
    service = Service(settings, Metrics(CollectorRegistry(), ["privilege"]))
    thread = threading.Thread(target=service.run, kwargs={"max_idle_s": 4.0})
    thread.start()
    thread.join(timeout=120)
    assert not thread.is_alive()
    assert service.inputs[-1] == topics["authentication"], "the service read the sign-ins"
    assert service.handled_total == len(ids)
    assert service.partitions.duplicates() == len(ids) - len(expected), "each duplicate ignored once"
    alerts = [orjson.loads(r.value) for r in read_all(kafka_bootstrap, topics["alerts"])]
    paging = [a for a in alerts if a["level"] in ("medium", "high", "critical")]
    assert [(a["detector"], a["principal_id"]) for a in paging] == [
        ("privilege", f"arn:aws:iam::{ACCOUNT}:user/mallory")]


def test_directory_and_catalog_from_compacted_topics_follow_updates(kafka_bootstrap, fresh_topics):
    from stream.enrich.reference import Reference
    from stream.ingest.settings import IngestSettings

    topics = fresh_topics(n_partitions=1, names=("directory", "catalog"))
    person = {"id": "u-1", "aliases": ["alice@example.com"], "department": "finance"}
    produce(kafka_bootstrap, topics["directory"], [person], key=lambda d: d["id"].encode())
    rules = [{"id": "t.salaries", "sensitivity": "restricted", "order": 2},
             {"prefix": "t.", "sensitivity": "internal", "order": 9}]
    produce(kafka_bootstrap, topics["catalog"], rules, key=lambda r: str(r["order"]).encode())
    settings = IngestSettings(bootstrap_servers=kafka_bootstrap, directory_topic=topics["directory"],
                              catalog_topic=topics["catalog"])
    from stream.kafka import clients

    reference = Reference(settings, lambda: clients.consumer(settings, group_id=None))  # type: ignore[arg-type]
    try:
        assert reference.directory().resolve(["alice@example.com"]) == "u-1"
        assert reference.catalog().lookup("t.salaries") == ("restricted", ())
        produce(kafka_bootstrap, topics["directory"], [person | {"aliases": ["alice@corp.example"]}],
                key=lambda d: d["id"].encode())
        deadline = time.monotonic() + 30
        while reference.directory().resolve(["alice@corp.example"]) is None:
            assert time.monotonic() < deadline, "the update was not applied"
            reference.refresh()
            time.sleep(0.2)
        assert reference.directory().resolve(["alice@example.com"]) is None, "the latest record replaced the first"
    finally:
        reference.close()
