"""Analyst feedback: parsing, the policy, its effect through the engine, and through the service."""

from __future__ import annotations

import threading

import orjson
import pytest
from factories import T0, iso, lines, routine_then_bulk
from kafka_helpers import principal_key, produce, read_all
from prometheus_client import CollectorRegistry

from detectors.feedback import FeedbackPolicy, Verdict
from stream.errors import BadRecord
from stream.feedback.reader import to_verdict
from stream.ops.metrics import Metrics
from stream.replay.replay import replay_lines
from stream.service.service import Service
from stream.settings import Settings

PAGING = {"medium", "high", "critical"}


def _feedback(alert_id: str, verdict: str = "false_positive", ts: float = T0, **extra) -> bytes:
    return orjson.dumps({"type": "feedback", "alert_id": alert_id, "verdict": verdict, "ts": iso(ts),
                         "analyst": "a-1", "note": "known batch job", **extra})


def test_feedback_record_becomes_a_verdict():
    v = to_verdict(_feedback("volume:u-1:e9", resource_id="t1"))
    assert (v.detector, v.principal_id, v.peer_group, v.resource_ids) == ("volume", "u-1", None, ("t1",))


@pytest.mark.parametrize("raw", [b"{", b"{}", _feedback("nocolons"), _feedback("volume:u-1:e", verdict="meh")])
def test_bad_feedback_is_refused(raw):
    with pytest.raises(BadRecord):
        to_verdict(raw)


def _two_bulk_exports():
    docs = routine_then_bulk("u-9", days=6)
    second = dict(docs[-1], event_id="u-9-bulk-2", ts=iso(T0 + 8 * 86_400 + 10 * 3600))
    return docs + [second]


def _paging_ids(alerts):
    return [a["evidence_event_ids"][-1] for a in alerts if a["level"] in PAGING]


def test_without_feedback_both_bulk_exports_page():
    assert _paging_ids(replay_lines(lines(_two_bulk_exports())).alerts) == ["u-9-bulk", "u-9-bulk-2"]


def test_false_positive_verdict_allow_lists_the_principal_for_that_detector():
    first = next(a for a in replay_lines(lines(_two_bulk_exports())).alerts if a["level"] in PAGING)
    verdict = to_verdict(_feedback(first["alert_id"], ts=T0 + 7 * 86_400))
    result = replay_lines(lines(_two_bulk_exports()), verdicts=[verdict])
    assert _paging_ids(result.alerts) == ["u-9-bulk"]


def test_true_positive_changes_nothing_and_verdicts_expire():
    policy = FeedbackPolicy(allow_s=86_400)
    policy.apply(Verdict("true_positive", T0, "volume", "u-9", "g"))
    assert not policy.allow and not policy.raise_by
    policy.apply(Verdict("false_positive", T0, "volume", "u-9", "g"))
    assert policy.allow[("volume", "u-9", "*")] == (T0, T0 + 86_400)


def test_benign_raises_the_bar_for_the_peer_group():
    policy = FeedbackPolicy()
    policy.apply(Verdict("benign", T0, "volume", "u-1", "sales/analyst"))
    from detectors.base import Finding, Profile
    from detectors.events import Event

    peer = Event(kind="access", event_id="e", ts=T0 + 60, principal_id="u-2", resource_id="t")
    severity, why = policy.adjust(Finding("volume", peer, 5.0, "t", ["r"], ["e"]),
                                  Profile(T0, T0, peer_group="sales/analyst"), 70.0)
    assert severity == 70.0 - policy.benign_step and why


@pytest.mark.integration
def test_feedback_topic_suppresses_later_alerts_in_the_service(kafka_bootstrap, fresh_topics, group_id):
    topics = fresh_topics(n_partitions=3)
    docs = _two_bulk_exports()
    first = next(a for a in replay_lines(lines(docs)).alerts if a["level"] in PAGING)
    produce(kafka_bootstrap, topics["feedback"], [_feedback(first["alert_id"], ts=T0 + 7 * 86_400)],
            key=lambda _: first["alert_id"].encode())
    produce(kafka_bootstrap, topics["access"], docs, principal_key)
    settings = Settings(bootstrap_servers=kafka_bootstrap, group_id=group_id, access_topic=topics["access"],
                        permission_topic=topics["permission"], alerts_topic=topics["alerts"],
                        dead_letter_topic=topics["dead-letter"], feedback_topic=topics["feedback"],
                        state_topic=topics["state"], metrics_port=0, merge_wait_ms=100, durable_state=False)
    metrics = Metrics(CollectorRegistry(), ["volume"])
    service = Service(settings, metrics)
    # The feedback topic is read whole before input processing starts (a global table's bootstrap).
    thread = threading.Thread(target=service.run, kwargs={"max_idle_s": 4.0})
    thread.start()
    thread.join(timeout=120)
    assert not thread.is_alive()
    alerts = [orjson.loads(r.value) for r in read_all(kafka_bootstrap, topics["alerts"])]
    assert _paging_ids(alerts) == ["u-9-bulk"]
    value = metrics.registry.get_sample_value
    assert value("privwatch_feedback_total", {"verdict": "false_positive"}) == 1
    assert value("privwatch_alerts_suppressed_total", {"reason": "allow_list"}) >= 1


def test_feedback_eval_stops_a_recurring_benign_job_paging_without_losing_incidents(tmp_path):
    """An approved migration (simulated `recurring_bulk_job`) pages on every bulk export until an
    analyst's false_positive verdict allow-lists it; the incidents are all still found."""
    from stream.evaluate.feedback import feedback_experiment
    from stream.simulate import simulate
    from stream.simulate.output import meta, write_outputs

    events, labels = simulate(seed=5, principals=80, days=21, baseline_days=8, recurring_jobs=2)
    assert sum(1 for label in labels if label["kind"] == "recurring_bulk_job") == 2
    write_outputs(tmp_path, events, labels, meta(5, 80, 21, "2026-10-01", 8, events, labels))
    result = feedback_experiment(tmp_path)
    fp = result["second_half_false_pages"]
    assert result["verdicts"] >= 2
    assert fp["with_feedback"] < fp["without_feedback"]
    assert result["recall"]["with_feedback"] == result["recall"]["without_feedback"]
