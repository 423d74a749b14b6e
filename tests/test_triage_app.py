"""The triage app with Flask's test client: sign-in, queue, incident page, signed verdicts, audit log."""

from __future__ import annotations

import base64
import re

import pytest
from factories import T0, iso
from feedback_helpers import ALERT_KEY, ALICE, MALLORY
from triage_helpers import PASSWORDS, analysts_file

from detectors.alerts import alert_id
from stream.alertmanager.mapping import incident_key, to_alertmanager
from stream.feedback.analysts import load_analysts
from stream.feedback.signing import b64
from stream.triage.app import create_app
from stream.triage.schema import connect
from stream.triage.store import QueueFilter, TriageStore


def _alert(n: int, principal: str = "u-1", minutes: float = 0, level: str = "high", detector: str = "volume",
           **extra) -> dict:
    return {"type": "alert", "alert_id": alert_id(detector, principal, f"e{n}", ALERT_KEY),
            "ts": iso(T0 + 60 * minutes), "detected_at": iso(T0 + 60 * minutes), "detector": detector,
            "principal_id": principal, "resource_ids": ["customers.payments"], "severity": 80.0, "level": level,
            "title": f"finding {n}", "reasons": [f"exported {n},000 records; usual 30"],
            "evidence_event_ids": [f"e{n}"],
            "baseline": {"observed_records": n * 1000, "usual_records": 30, "peer_usual_records": 45}, **extra}


@pytest.fixture
def app(tmp_path):
    published: list[dict] = []
    store = TriageStore(connect(f"sqlite:///{tmp_path / 'triage.sqlite'}"), window_s=3600)
    store.add_alerts([_alert(1), _alert(2, minutes=20), _alert(3, minutes=300), _alert(4, principal="u-9"),
                      _alert(5, principal="u-2", level="low")])
    app = create_app(store, load_analysts(str(analysts_file(tmp_path))), published.append,
                     runbook_base_url="https://rb")
    app.extensions["published"] = published
    return app


def _csrf(page: bytes) -> str:
    return re.search(rb'name="csrf-token" content="([^"]+)"', page).group(1).decode()


def _sign_in(client, name="alice"):
    token = _csrf(client.get("/login").data)
    answer = client.post("/login", data={"name": name, "password": PASSWORDS[name], "csrf_token": token})
    assert answer.status_code == 302
    return _csrf(client.get("/").data)


def test_alerts_group_into_incidents_by_principal_and_window(app):
    store = app.extensions["privwatch.store"]
    open_ = store.queue(QueueFilter(level="info"), now=T0)
    assert sorted((i["principal_id"], i["n_alerts"]) for i in open_) == [("u-1", 1), ("u-1", 2), ("u-2", 1), ("u-9", 1)]
    first = next(i for i in open_ if i["n_alerts"] == 2)
    assert first["incident_id"] == incident_key(_alert(1)["alert_id"])  # the id Alertmanager shows
    assert store.add_alerts([_alert(1)]) == 0  # re-delivered: nothing changes
    assert store.counts(QueueFilter(level="medium"), now=T0) == {"open": 3, "assigned": 0, "closed": 0}
    assert store.counts(QueueFilter(level="medium", principal="u-9"), now=T0)["open"] == 1


def test_nothing_is_anonymous(app):
    client = app.test_client()
    for path in ("/", "/audit", f"/incidents/{incident_key(_alert(1)['alert_id'])}"):
        answer = client.get(path)
        assert answer.status_code == 302 and "/login" in answer.headers["Location"]
    assert client.post("/login", data={"name": "alice", "password": "x"}).status_code == 400  # no CSRF token
    token = _csrf(client.get("/login").data)
    wrong = client.post("/login", data={"name": "alice", "password": "nope", "csrf_token": token})
    assert b"wrong password" in wrong.data


def _try(client, token, name, password, address):
    return client.post("/login", data={"name": name, "password": password, "csrf_token": token},
                       environ_base={"REMOTE_ADDR": address}).status_code


def test_failed_sign_ins_are_throttled_per_address_and_per_name(app):
    client = app.test_client()
    token = _csrf(client.get("/login").data)
    assert [_try(client, token, "alice", "nope", "10.0.0.1") for _ in range(10)] == [200] * 10
    assert _try(client, token, "alice", PASSWORDS["alice"], "10.0.0.1") == 429  # even the right one
    assert _try(client, token, "alice", PASSWORDS["alice"], "10.0.0.2") == 302  # another address may
    # guessing one name from many addresses: each address stays under its own limit
    assert {_try(client, token, "bob", "nope", f"10.1.0.{n}") for n in range(10)} == {200}
    assert {_try(client, token, "bob", "nope", f"10.2.0.{n}") for n in range(10)} == {200}
    assert _try(client, token, "bob", PASSWORDS["bob"], "10.3.0.1") == 429
    assert _try(client, token, "alice", PASSWORDS["alice"], "10.3.0.1") == 302  # other names are not


def test_successful_sign_ins_are_not_throttled(app):
    client = app.test_client()
    token = _csrf(client.get("/login").data)
    assert {_try(client, token, "alice", PASSWORDS["alice"], "10.0.0.1") for _ in range(15)} == {302}


def test_queue_and_incident_page(app):
    client = app.test_client()
    _sign_in(client)
    queue = client.get("/?level=info").data.decode()
    assert "finding 1" in queue and "u-9" in queue and 'id="tab-open"' in queue
    assert "finding 5" not in client.get("/").data.decode()  # low, below the default level
    incident_id = incident_key(_alert(1)["alert_id"])
    page = client.get(f"/incidents/{incident_id}").data.decode()
    assert "exported 2,000 records; usual 30" in page and "https://rb/volume.md" in page
    assert page.count('class="observed"') == 2 and 'class="baseline"' in page  # the charts
    response = client.get(f"/incidents/{incident_id}")
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]


def test_evidence_url_of_alertmanager_leads_to_the_incident_page(app):
    client = app.test_client()
    _sign_in(client)
    am = to_alertmanager(_alert(2, minutes=20), evidence_url="http://triage.example/alerts/{alert_id}")
    path = am["annotations"]["evidence_url"].removeprefix("http://triage.example")
    answer = client.get(path)
    assert answer.status_code == 302
    assert answer.headers["Location"].startswith(f"/incidents/{incident_key(_alert(1)['alert_id'])}#alert-")


def _prepare(client, token, incident_id, **choices):
    answer = client.post(f"/incidents/{incident_id}/verdicts/prepare", json=choices, headers={"X-CSRFToken": token})
    return answer.status_code, answer.get_json()


def _submit(client, token, incident_id, record, key):
    signature = key.sign(base64.b64decode(record.pop("to_sign")))
    record = {**record["record"], "signature": b64(signature)}
    answer = client.post(f"/incidents/{incident_id}/verdicts", json={"record": record}, headers={"X-CSRFToken": token})
    return answer.status_code, answer.get_json()


def test_a_verdict_signed_by_the_analyst_is_published_kept_and_audited(app):
    client = app.test_client()
    token = _sign_in(client)
    incident_id = incident_key(_alert(1)["alert_id"])
    choices = {"alert_id": _alert(2, minutes=20)["alert_id"], "verdict": "false_positive", "scope": "resource",
               "resource_id": "customers.payments", "days": "10", "note": "migration", "key_id": "alice-1"}
    status, prepared = _prepare(client, token, incident_id, **choices)
    assert status == 200 and prepared["record"]["analyst"] == "alice" and "signature" not in prepared["record"]
    status, answer = _submit(client, token, incident_id, dict(prepared), MALLORY)
    assert status == 400 and "does not verify" in answer["error"]
    status, answer = _submit(client, token, incident_id, prepared, ALICE)
    assert status == 200
    published = app.extensions["published"]
    assert [r["verdict_id"] for r in published] == [answer["verdict_id"]] and published[0]["scope"] == "resource"
    page = client.get(f"/incidents/{incident_id}").data.decode()
    assert "migration" in page and "Revoke" in page
    status, prepared = _prepare(client, token, incident_id, alert_id=choices["alert_id"],
                                revokes=answer["verdict_id"], key_id="alice-1")
    assert _submit(client, token, incident_id, prepared, ALICE)[0] == 200
    assert published[-1]["verdict"] == "revoke" and published[-1]["revokes"] == answer["verdict_id"]
    actions = [e["action"] for e in app.extensions["privwatch.store"].audit_of(incident_id)]
    assert actions == ["verdict", "verdict"]


def test_no_verdict_about_oneself_and_no_csrf_bypass(app):
    client = app.test_client()
    token = _sign_in(client, "bob")  # bob is the principal u-9
    incident_id = incident_key(_alert(4, principal="u-9")["alert_id"])
    assert "This incident is about you" in client.get(f"/incidents/{incident_id}").data.decode()
    status, prepared = _prepare(client, token, incident_id, alert_id=_alert(4, principal="u-9")["alert_id"],
                                verdict="benign", scope="alert", key_id="bob-1")
    from feedback_helpers import BOB

    assert _submit(client, token, incident_id, prepared, BOB) == (400, {"error": "no verdict about yourself"})
    assert client.post(f"/incidents/{incident_id}/verdicts/prepare", json={}).status_code == 400  # no token
    assert not app.extensions["published"]


def test_assignment_and_status_are_audited(app):
    client = app.test_client()
    token = _sign_in(client)
    incident_id = incident_key(_alert(1)["alert_id"])
    client.post(f"/incidents/{incident_id}/assign", data={"assignee": "bob", "csrf_token": token})
    store = app.extensions["privwatch.store"]
    assert store.incident(incident_id)["status"] == "assigned"
    client.post(f"/incidents/{incident_id}/status", data={"status": "closed", "csrf_token": token})
    assert store.incident(incident_id)["status"] == "closed"
    client.post(f"/incidents/{incident_id}/status", data={"status": "open", "csrf_token": token})
    assert store.incident(incident_id)["status"] == "assigned"
    assert [e["action"] for e in store.audit_of(incident_id)] == ["reopen", "close", "assign"]
    assert "sign_in" in [e["action"] for e in store.audit_of()]


def test_records_on_the_alerts_topic_that_are_not_alerts_are_counted_and_skipped():
    import orjson

    from stream.triage.ingest import alerts_in

    docs, bad = alerts_in([orjson.dumps(_alert(1)), b"{not json", orjson.dumps({"type": "alert"}), b""])
    assert [d["alert_id"] for d in docs] == [_alert(1)["alert_id"]] and bad == 3


def test_behind_a_trusted_proxy_the_forwarded_address_is_throttled(tmp_path):
    store = TriageStore(connect(f"sqlite:///{tmp_path / 'triage.sqlite'}"), window_s=3600)
    app = create_app(store, load_analysts(str(analysts_file(tmp_path))), lambda _: None, trusted_proxies=1)
    client = app.test_client()
    token = _csrf(client.get("/login").data)

    def via_proxy(password: str, client_address: str) -> int:
        return client.post("/login", data={"name": "alice", "password": password, "csrf_token": token},
                           environ_base={"REMOTE_ADDR": "127.0.0.1"},
                           headers={"X-Forwarded-For": client_address}).status_code

    assert {via_proxy("nope", "192.0.2.7") for _ in range(10)} == {200}
    assert via_proxy(PASSWORDS["alice"], "192.0.2.7") == 429
    assert via_proxy(PASSWORDS["alice"], "192.0.2.8") == 302  # the proxy's other clients are not


def test_alertmanagers_id_of_a_page_that_joined_an_earlier_incident_opens_it(app):
    """A low alert opens u-7's incident in triage; the page 20 minutes later carries the service's
    incident id (counted from its first page), which is what Alertmanager links to."""
    store = app.extensions["privwatch.store"]
    low = _alert(20, principal="u-7", minutes=600, level="low")
    page = _alert(21, principal="u-7", minutes=620)
    page["incident"] = {"incident_id": incident_key(page["alert_id"])}
    store.add_alerts([low, page])
    opened = incident_key(low["alert_id"])
    assert store.incident_of(page["alert_id"]) == opened != page["incident"]["incident_id"]
    client = app.test_client()
    _sign_in(client)
    answer = client.get(f"/incidents/{page['incident']['incident_id']}")
    assert answer.status_code == 302 and answer.headers["Location"].endswith(f"/incidents/{opened}")
    assert client.get("/incidents/0123456789abcdef").status_code == 404
