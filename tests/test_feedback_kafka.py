"""Analyst feedback against the real broker: the service applies a signed verdict and refuses, counts
and ignores every forgery, while the insider the forgeries try to hide still pages."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime

import orjson
import pytest
from factories import T0, iso, routine_then_bulk
from feedback_helpers import ALERT_KEY, ANALYSTS_TOML, BOB, MALLORY, signed
from kafka_helpers import principal_key, produce, read_all
from prometheus_client import CollectorRegistry

from detectors.calibrate import PAGING_LEVELS
from stream.cli import main
from stream.ops.metrics import Metrics
from stream.service.service import Service
from stream.settings import Settings

pytestmark = pytest.mark.integration

INSIDER, CONTROL, REVOKED = "u-9", "u-8", "u-7"  # u-9 is also the analyst bob (feedback_helpers)


def _history(principal: str, now: float) -> list[dict]:
    """Six days of small exports ending two hours ago, then a bulk export (which pages). Each principal
    in a department of its own: bulk exports by several peers at once would be damped as a shift."""
    docs = routine_then_bulk(principal, days=6)
    shift = now - 2 * 3600 - (T0 + 6 * 86_400 + 10 * 3600)
    return [dict(d, ts=iso(event_ts(d) + shift), principal=dict(d["principal"], department=f"dept-{principal}"))
            for d in docs]


def event_ts(doc: dict) -> float:
    return datetime.fromisoformat(doc["ts"]).timestamp()


def _repeat(principal: str, now: float) -> dict:
    last = _history(principal, now)[-1]
    return dict(last, event_id=f"{principal}-bulk-again", ts=iso(now))


def wait_for(what: str, condition: Callable[[], bool], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _alerts(bootstrap: str, topic: str) -> list[dict]:
    return [orjson.loads(r.value) for r in read_all(bootstrap, topic, timeout_s=5)]


def _first_page(alerts: list[dict], principal: str) -> dict | None:
    return next((a for a in alerts if a["principal_id"] == principal and a["level"] in PAGING_LEVELS), None)


def test_forged_verdicts_are_refused_and_counted_and_the_insider_still_pages(kafka_bootstrap, fresh_topics, group_id,
                                                                              tmp_path, capfd):
    topics = fresh_topics(n_partitions=1)  # one feedback partition, as create_topics makes it: records in order
    analysts = tmp_path / "analysts.toml"
    analysts.write_text(ANALYSTS_TOML)
    settings = Settings(
        bootstrap_servers=kafka_bootstrap, group_id=group_id, access_topic=topics["access"],
        permission_topic=topics["permission"], alerts_topic=topics["alerts"], dead_letter_topic=topics["dead-letter"],
        feedback_topic=topics["feedback"], state_topic=topics["state"], metrics_port=0, merge_wait_ms=100,
        analysts_file=str(analysts), alert_id_key=ALERT_KEY.decode(), durable_state=False)
    now = time.time()
    produce(kafka_bootstrap, topics["access"], [d for p in (INSIDER, CONTROL, REVOKED) for d in _history(p, now)],
            principal_key)
    metrics = Metrics(CollectorRegistry(), ["volume"])
    service = Service(settings, metrics)
    thread = threading.Thread(target=service.run, kwargs={"max_idle_s": 600.0})
    thread.start()
    try:
        alerts: list[dict] = []

        def three_pages() -> bool:
            alerts[:] = _alerts(kafka_bootstrap, topics["alerts"])
            return all(_first_page(alerts, p) for p in (INSIDER, CONTROL, REVOKED))

        wait_for("the three first pages", three_pages)
        insider, control, revoked = (_first_page(alerts, p)["alert_id"] for p in (INSIDER, CONTROL, REVOKED))
        now = time.time()
        authentic = signed(revoked, now)
        honest = [signed(control, now), authentic,
                  signed(revoked, now, verdict="revoke", scope="alert", revokes=authentic["verdict_id"], days=30)]
        forged = {
            "unsigned": {k: v for k, v in signed(insider, now).items() if k != "signature"},
            "bad_signature": signed(insider, now, key=MALLORY),
            "unknown_analyst": signed(insider, now, analyst="mallory", key_id="mallory-1", key=MALLORY),
            "not_emitted": signed(insider.rsplit(":", 1)[0] + ":0123456789abcdef", now),
            "own_alert": signed(insider, now, analyst="bob", key_id="bob-1", key=BOB),
            "backdated": signed(insider, now - 3 * 86_400),
            "future": signed(insider, now + 3600),
            "expired": signed(insider, now - 3600, days=0.02),
            "revoked": authentic,  # replayed after its revoke
        }
        records = honest + list(forged.values())
        produce(kafka_bootstrap, topics["feedback"], records, key=lambda doc: doc["verdict_id"].encode())
        refused = metrics.feedback_refused

        wait_for("every feedback record handled", lambda: sum(
            refused.labels(r)._value.get() for r in forged) + metrics.feedback.labels("false_positive")._value.get()
            + metrics.feedback.labels("revoke")._value.get() >= len(records))
        now = time.time()
        produce(kafka_bootstrap, topics["access"], [_repeat(p, now) for p in (INSIDER, CONTROL, REVOKED)],
                principal_key)

        def repeats() -> bool:
            alerts[:] = _alerts(kafka_bootstrap, topics["alerts"])
            return len([a for a in alerts if a["evidence_event_ids"][-1].endswith("-bulk-again")]) == 3

        wait_for("the three repeats", repeats)
    finally:
        service.request_stop()
        thread.join(timeout=60)
    assert not thread.is_alive()
    again = {a["principal_id"]: a for a in alerts if a["evidence_event_ids"][-1].endswith("-bulk-again")}
    assert again[INSIDER]["level"] in PAGING_LEVELS and "suppressed_by" not in again[INSIDER]  # still pages
    assert again[REVOKED]["level"] in PAGING_LEVELS  # the revoked verdict, replayed, does nothing
    assert again[CONTROL]["level"] == "info" and again[CONTROL]["suppressed_by"]["analyst"] == "alice"
    value = metrics.registry.get_sample_value
    assert {r: value("privwatch_feedback_refused_total", {"reason": r}) for r in forged} == {r: 1.0 for r in forged}
    assert value("privwatch_feedback_total", {"verdict": "false_positive"}) == 2
    assert value("privwatch_feedback_total", {"verdict": "revoke"}) == 1
    assert len(service.feedback) == 1  # only the control's verdict is in force
    # and privwatch alerts reads the same story straight from the alerts topic
    assert main(["alerts", "list", "--from-topic", "--level", "info", "--bootstrap-servers", kafka_bootstrap,
                 "--alerts-topic", topics["alerts"]]) == 0
    listed = capfd.readouterr().out
    assert all(principal in listed for principal in (INSIDER, CONTROL, REVOKED))
