"""Analyst feedback: alert ids, the checks a verdict must pass, the policy, and its effect on the engine."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import orjson
import pytest
from factories import T0, iso, lines, routine_then_bulk
from feedback_helpers import ALERT_KEY, BOB, MALLORY, checker, raw, signed

from detectors.alerts import alert_id, check_alert_id, parse_alert_id
from detectors.base import Finding
from detectors.engine import Engine
from detectors.events import Event
from detectors.feedback import FeedbackPolicy, Verdict
from stream.contract import SCHEMA_DIR
from stream.feedback.analysts import parse_analysts
from stream.feedback.replayed import ReplayFeedback
from stream.feedback.signing import load_private, public_text
from stream.feedback.verify import REASONS, Refused, VerdictChecker
from stream.ops.metrics import FEEDBACK_REFUSALS
from stream.replay.replay import replay_lines

PAGING = {"medium", "high", "critical"}
NOW = T0 + 7 * 86_400


# -- alert ids -------------------------------------------------------------------------------------
@pytest.mark.parametrize("names", [("volume", "u-1", "e9"), ("volume", "db:u:1", "e:9"), ("a%3A", "%", "%25:%3A")])
def test_alert_ids_split_back_into_exactly_their_names(names):
    made = alert_id(*names, key=ALERT_KEY)
    assert made == alert_id(*names, key=ALERT_KEY)  # deterministic
    assert parse_alert_id(made)[:3] == names
    assert check_alert_id(made, ALERT_KEY) and not check_alert_id(made, b"another key of thirty-two bytes!")


def test_names_with_colons_no_longer_hit_another_principal():
    a, b = alert_id("volume", "u-1:x", "e", ALERT_KEY), alert_id("volume", "u-1", "x:e", ALERT_KEY)
    assert a != b and parse_alert_id(a)[1] == "u-1:x" and parse_alert_id(b)[1] == "u-1"


@pytest.mark.parametrize("bad", ["volume:u-1:e9", "volume:u-1:e9:short", "a:b:c:d:0123456789abcdef", ""])
def test_malformed_alert_ids_are_refused(bad):
    with pytest.raises(ValueError):
        parse_alert_id(bad)


# -- the checks ------------------------------------------------------------------------------------
def _id(principal="u-9", event="u-9-bulk", detector="volume"):
    return alert_id(detector, principal, event, ALERT_KEY)


def _reason(record, received_at=NOW, now=NOW, check=None):
    with pytest.raises(Refused) as refused:
        (check or checker()).check(record if isinstance(record, bytes) else raw(record), received_at, now)
    return refused.value.reason


def test_an_authentic_verdict_is_accepted_and_clamped_to_when_it_arrived():
    doc = signed(_id(), NOW + 100)  # signed 100 s after it reached the topic (clock skew)
    verdict = checker().check(raw(doc), NOW, NOW).verdict
    assert (verdict.detector, verdict.principal_id, verdict.event_id) == ("volume", "u-9", "u-9-bulk")
    assert verdict.since == NOW and verdict.until == NOW + 100 + 7 * 86_400 and verdict.analyst == "alice"


def test_every_forgery_is_refused_with_its_reason():
    doc = signed(_id(), NOW)
    unsigned = {k: v for k, v in doc.items() if k != "signature"}
    cases = {
        "unsigned": unsigned,
        "bad_signature": signed(_id(), NOW, key=MALLORY),
        "unknown_analyst": signed(_id(), NOW, analyst="mallory", key_id="alice-1", key=MALLORY),
        "unknown_key": signed(_id(), NOW, key_id="bob-1"),  # bob's key id, claimed by alice
        "not_emitted": signed("volume:u-9:made-up:0123456789abcdef", NOW),
        "own_alert": signed(_id(), NOW, analyst="bob", key_id="bob-1", key=BOB),  # bob is u-9
        "future": signed(_id(), NOW + 3600),
        "backdated": signed(_id(), NOW - 7 * 86_400),
        "bad_expiry": {**doc, "expires": iso(NOW + 31 * 86_400)},
        "malformed": {**doc, "scope": "everyone"},
    }
    assert {reason: _reason(record) for reason, record in cases.items()} == {r: r for r in cases}
    assert _reason(doc, now=NOW + 8 * 86_400) == "expired"
    assert _reason(b"{not json") == "malformed" and _reason(b"x" * 20_000) == "too_large"
    assert _reason(doc, check=VerdictChecker(checker().analysts, None)) == "not_configured"
    assert set(cases) | {"expired", "too_large", "not_configured"} <= set(REASONS)
    assert REASONS == FEEDBACK_REFUSALS  # every reason's metric label is pre-initialised


def test_a_changed_field_breaks_the_signature():
    doc = signed(_id(), NOW, note="batch job")
    for field, value in (("note", "other"), ("scope", "alert"), ("verdict", "benign"), ("expires", iso(NOW + 60))):
        assert _reason({**doc, field: value}) == "bad_signature"


def test_the_contract_example_verifies_with_the_documented_example_key():
    """stream/contract/examples/feedback.json is signed by tests/fixtures/feedback/example-analyst.key."""
    fixtures = Path(__file__).parent / "fixtures" / "feedback"
    key = load_private((fixtures / "example-analyst.key").read_bytes(), "example key")
    analysts = parse_analysts(f'[[analyst]]\nname = "alice"\nkeys = [{{id = "alice-2026-11", '
                              f'public_key = "{public_text(key)}"}}]\n')
    record = (SCHEMA_DIR / "examples" / "feedback.json").read_bytes()
    signed_at = datetime.fromisoformat(orjson.loads(record)["ts"]).timestamp()
    example_key = (fixtures / "example-alert-id.key").read_bytes().strip()
    accepted = VerdictChecker(analysts, example_key).check(record, signed_at, signed_at)
    assert accepted.verdict.principal_id == "u-4821"


# -- the policy ------------------------------------------------------------------------------------
def _finding(ts, principal="u-1", resource="t1", event_id="e", detector="volume"):
    event = Event(kind="access", event_id=event_id, ts=ts, principal_id=principal, resource_id=resource)
    return Finding(detector, event, 9.0, "t", ["r"], [event_id])


def _verdict(scope="detector", verdict="false_positive", vid="v" * 16, **kw):
    fields = dict(detector="volume", principal_id="u-1", event_id="e0", since=100.0, until=1000.0,
                  analyst="alice", resource_id="")
    fields.update(kw)
    return Verdict(vid, verdict, scope, **fields)


def test_scopes():
    policy = FeedbackPolicy()
    policy.apply(_verdict("resource", resource_id="t1"))
    assert policy.match(_finding(500, resource="t1")) and not policy.match(_finding(500, resource="t2"))
    assert not policy.match(_finding(50)) and not policy.match(_finding(5000))  # before and after
    assert not policy.match(_finding(500, principal="u-2")) and not policy.match(_finding(500, detector="x"))
    policy.apply(_verdict("alert", vid="w" * 16, event_id="e7"))
    assert policy.match(_finding(90, resource="t2", event_id="e7")) and not policy.match(_finding(90, resource="t2"))


def test_true_positive_suppresses_nothing_and_revoke_is_final():
    policy = FeedbackPolicy()
    assert policy.apply(_verdict(verdict="true_positive")) == "counted" and not len(policy)
    assert policy.apply(_verdict()) == "applied" and policy.apply(_verdict()) == "duplicate"
    assert policy.revoke("v" * 16, 1000.0) and not policy.match(_finding(500))
    assert policy.apply(_verdict()) == "revoked"  # the same signed verdict, replayed after its revoke


def test_tables_are_pruned_on_expiry_and_capped():
    policy = FeedbackPolicy(max_verdicts=3)
    for n in range(3):
        assert policy.apply(_verdict(vid=f"{n:016d}", principal_id=f"u-{n}")) == "applied"
    assert policy.apply(_verdict(vid="9" * 16)) == "full"
    policy.revoke("0" * 16, 2000.0)
    assert policy.prune(1500.0, force=True) == 2 and len(policy) == 0 and policy.index == {}
    assert policy.is_revoked("0" * 16) and policy.prune(2500.0, force=True) == 1 and not policy.revoked


# -- through the engine ----------------------------------------------------------------------------
def _two_bulk_exports():
    docs = routine_then_bulk("u-9", days=6)
    second = dict(docs[-1], event_id="u-9-bulk-2", ts=iso(T0 + 8 * 86_400 + 10 * 3600))
    return docs + [second]


def _pages(alerts):
    return [a["evidence_event_ids"][-1] for a in alerts if a["level"] in PAGING]


def _first_page():
    alerts = replay_lines(lines(_two_bulk_exports()), Engine(alert_key=ALERT_KEY)).alerts
    assert _pages(alerts) == ["u-9-bulk", "u-9-bulk-2"]
    return next(a for a in alerts if a["level"] in PAGING)


def test_a_signed_verdict_turns_the_repeat_into_an_info_alert_naming_it():
    first = _first_page()
    doc = signed(first["alert_id"], T0 + 7 * 86_400, note="approved migration")
    feedback = ReplayFeedback([raw(doc)], checker())
    alerts = replay_lines(lines(_two_bulk_exports()), feedback=feedback).alerts
    assert _pages(alerts) == ["u-9-bulk"] and feedback.applied == {"false_positive": 1}
    repeat = next(a for a in alerts if a["evidence_event_ids"][-1] == "u-9-bulk-2")
    assert repeat["level"] == "info" and repeat["suppressed_by"]["verdict_id"] == doc["verdict_id"]
    assert any("suppressed by analyst verdict" in r for r in repeat["reasons"])


def test_forged_verdicts_change_nothing():
    first = _first_page()
    forged = [raw(signed(first["alert_id"], T0 + 7 * 86_400, key=MALLORY)),
              raw({"type": "feedback", "alert_id": first["alert_id"], "verdict": "benign", "ts": iso(T0)}),
              raw(signed(first["alert_id"].rsplit(":", 1)[0] + ":0000000000000000", T0 + 7 * 86_400))]
    feedback = ReplayFeedback(forged, checker())
    alerts = replay_lines(lines(_two_bulk_exports()), feedback=feedback).alerts
    assert _pages(alerts) == ["u-9-bulk", "u-9-bulk-2"] and not feedback.applied
    assert feedback.refused == {"bad_signature": 1, "unsigned": 1, "not_emitted": 1}


def test_a_suppressed_event_is_not_learned_as_normal():
    """Three bulk exports: with the second suppressed, the third still pages (it was not learned)."""
    docs = _two_bulk_exports()
    third = dict(docs[-1], event_id="u-9-bulk-3", ts=iso(T0 + 9 * 86_400 + 10 * 3600))
    first = _first_page()
    doc = signed(first["alert_id"], T0 + 7 * 86_400, days=1.9)  # over before the third
    alerts = replay_lines(lines(docs + [third]), feedback=ReplayFeedback([raw(doc)], checker())).alerts
    assert _pages(alerts) == ["u-9-bulk", "u-9-bulk-3"]


def test_a_verdict_reaches_no_peer():
    docs = _two_bulk_exports() + [dict(d, principal=dict(d["principal"], id="u-8"), event_id="p" + d["event_id"])
                                  for d in _two_bulk_exports()]
    docs.sort(key=lambda d: d["ts"])
    engine_alerts = replay_lines(lines(docs), Engine(alert_key=ALERT_KEY)).alerts
    first = next(a for a in engine_alerts if a["level"] in PAGING and a["principal_id"] == "u-9")
    doc = signed(first["alert_id"], T0 + 7 * 86_400, verdict="benign")
    alerts = replay_lines(lines(docs), feedback=ReplayFeedback([raw(doc)], checker())).alerts
    peer = [a["severity"] for a in alerts if a["principal_id"] == "u-8"]
    assert peer == [a["severity"] for a in engine_alerts if a["principal_id"] == "u-8"]


def test_feedback_eval_stops_a_recurring_benign_job_paging_without_losing_incidents(tmp_path):
    """An approved migration (simulated `recurring_bulk_job`) pages on every bulk export until an
    analyst's signed false_positive verdict covers it; the incidents are all still found."""
    from stream.evaluate.feedback import feedback_experiment
    from stream.simulate import simulate
    from stream.simulate.output import meta, write_outputs

    events, labels = simulate(seed=5, principals=80, days=21, baseline_days=8, recurring_jobs=2)
    assert sum(1 for label in labels if label["kind"] == "recurring_bulk_job") == 2
    write_outputs(tmp_path, events, labels, meta(5, 80, 21, "2026-10-01", 8, events, labels))
    result = feedback_experiment(tmp_path)
    fp = result["second_half_false_pages"]
    assert result["verdicts"] >= 2 and result["verdicts_applied"] == result["verdicts"]
    assert fp["with_feedback"] < fp["without_feedback"]
    assert result["recall"]["with_feedback"] == result["recall"]["without_feedback"]
