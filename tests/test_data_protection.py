"""Pseudonymised alert documents, and incidents that expire by their own partition's event time
(in memory, no broker)."""

from __future__ import annotations

import orjson
import pytest
from am_fixtures import make_alert
from factories import T0, lines, routine_then_bulk
from feedback_helpers import ALERT_KEY, BOB, analysts, raw, signed

from detectors.alerts import check_alert_id, parse_alert_id
from detectors.base import Finding
from detectors.calibrate import PAGING_LEVELS
from detectors.events import Event
from detectors.feedback import FeedbackPolicy
from stream.alertmanager.correlate import Correlator
from stream.alertmanager.pseudonym import pseudonym, pseudonyms
from stream.feedback.verify import Refused, VerdictChecker
from stream.settings import Settings
from stream.testing import in_memory

KEY = "q" * 32


def test_alerts_topic_documents_are_pseudonymised_in_alerts_mode() -> None:
    docs = routine_then_bulk("u-secret-7", days=4)
    settings = Settings(metrics_port=0, durable_state=False, pseudonymise="alerts", pseudonym_key=KEY)
    service, harness = in_memory(lines(docs), partitions=2, settings=settings)
    harness.run(service)
    alerts = [orjson.loads(value) for topic, _, value, _ in harness.producer.sent if topic == settings.alerts_topic]
    paging = [a for a in alerts if a["level"] in PAGING_LEVELS]
    assert paging and all("u-secret-7" not in orjson.dumps(a).decode() for a in alerts)
    assert {a["principal_id"] for a in paging} == {pseudonym(KEY.encode(), "u-secret-7")}
    assert paging[0]["incident"]["incident_id"]  # the page still carries its incident


def test_one_partitions_event_time_does_not_expire_anothers_incidents() -> None:
    correlator = Correlator(window_s=3600)
    first = correlator.add(make_alert(1, principal="u-a", ts="2026-11-26T09:00:00Z"), partition=0)
    correlator.add(make_alert(2, principal="u-b", ts="2026-11-27T09:00:00Z"), partition=1)  # a day on, elsewhere
    again = correlator.add(make_alert(3, principal="u-a", ts="2026-11-26T09:30:00Z"), partition=0)
    assert again["incident_id"] == first["incident_id"] and again["updates"] == 2


def _page_and_checker() -> tuple[dict, VerdictChecker]:
    """A page about u-9 as the alerts topic carries it in alerts mode, and the service's verdict checker."""
    settings = Settings(metrics_port=0, durable_state=False, pseudonymise="alerts", pseudonym_key=KEY,
                        alert_id_key=ALERT_KEY.decode())
    service, harness = in_memory(lines(routine_then_bulk("u-9", days=6)), partitions=1, settings=settings)
    harness.run(service)
    alerts = [orjson.loads(value) for topic, _, value, _ in harness.producer.sent if topic == settings.alerts_topic]
    page = next(a for a in alerts if a["level"] in PAGING_LEVELS)
    return page, VerdictChecker(analysts(), ALERT_KEY, pseudonyms=pseudonyms(KEY.encode()))


def test_a_verdict_on_a_pseudonymised_page_authenticates_and_suppresses_the_real_principals_repeat() -> None:
    page, check = _page_and_checker()
    _, principal, event_id, _ = parse_alert_id(page["alert_id"])
    assert check_alert_id(page["alert_id"], ALERT_KEY)  # made anew from the pseudonyms, with its MAC
    assert principal == page["principal_id"] == pseudonym(KEY.encode(), "u-9") and "u-9" not in event_id
    assert page["alert_id"] in page["incident"]["alert_ids"]
    now = T0 + 7 * 86_400
    accepted = check.check(raw(signed(page["alert_id"], now)), now, now)
    policy = FeedbackPolicy(pseudonyms=pseudonyms(KEY.encode()))
    assert policy.apply(accepted.verdict) == "applied"
    repeat = Event(kind="access", event_id="u-9-bulk-2", ts=now + 3600, principal_id="u-9", resource_id="t1")
    assert policy.match(Finding(page["detector"], repeat, 9.0, "t", ["r"], ["u-9-bulk-2"])) is not None
    other = Event(kind="access", event_id="x", ts=now + 3600, principal_id="u-8", resource_id="t1")
    assert policy.match(Finding(page["detector"], other, 9.0, "t", ["r"], ["x"])) is None


def test_an_analysts_verdict_on_their_own_pseudonymised_page_is_refused() -> None:
    page, check = _page_and_checker()  # bob's own principal is u-9
    now = T0 + 7 * 86_400
    record = signed(page["alert_id"], now, analyst="bob", key_id="bob-1", key=BOB)
    with pytest.raises(Refused) as refused:
        check.check(raw(record), now, now)
    assert refused.value.reason == "own_alert"
