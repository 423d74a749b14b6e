"""Verdicts from the incident page, signed in the analyst's browser.

The app holds no private key. The page asks :func:`prepare` for the record to sign (the server fixes
its id, times, analyst and key id), signs the canonical bytes with the analyst's key in the browser
(WebCrypto Ed25519, ``static/verdict.js``; the key is imported from the analyst's key file and kept
non-extractable in the browser), and sends the record with its signature to :func:`submit`, which
checks it as the service will (signature of the signed-in analyst's key, an alert this app received,
not about the analyst's own principal, times and scope in bounds), publishes it to the feedback topic
and records it in the database and the audit log.
"""

from __future__ import annotations

import base64
import logging
import time
from datetime import datetime
from typing import Any

from flask import Blueprint, abort, current_app, jsonify, request
from flask_login import current_user, login_required
from pydantic import ValidationError

from detectors.alerts import parse_alert_id
from stream.contract.models import Feedback
from stream.feedback.signing import MAX_EXPIRY_DAYS, signed_bytes, verdict_record, verify
from stream.feedback.verify import MAX_SKEW_S
from stream.triage.store import TriageStore

log = logging.getLogger(__name__)
bp = Blueprint("verdicts", __name__)
VERDICTS = ("true_positive", "false_positive", "benign")


def store() -> TriageStore:
    return current_app.extensions["privwatch.store"]


def _problem(message: str, status: int = 400) -> Any:
    return jsonify({"error": message}), status


@bp.route("/incidents/<incident_id>/verdicts/prepare", methods=["POST"])
@login_required
def prepare(incident_id: str) -> Any:
    """The unsigned record and the bytes to sign, for the form's choices."""
    form = request.get_json(silent=True) or {}
    alert_id, revokes = str(form.get("alert_id", "")), form.get("revokes") or None
    if store().incident_of(alert_id) != incident_id:
        abort(404)
    key_id = str(form.get("key_id", ""))
    if key_id not in current_user.analyst.key_ids:
        return _problem("choose one of your keys")
    try:
        if revokes:
            record = verdict_record(alert_id, "revoke", "alert", current_user.name, key_id, time.time(),
                                    MAX_EXPIRY_DAYS, revokes=str(revokes), note=form.get("note") or None)
        else:
            record = _verdict(form, alert_id, key_id)
    except ValueError as exc:
        return _problem(str(exc))
    return jsonify({"record": record, "to_sign": base64.b64encode(signed_bytes(record)).decode()})


def _verdict(form: dict[str, Any], alert_id: str, key_id: str) -> dict[str, Any]:
    verdict, scope = str(form.get("verdict", "")), str(form.get("scope", ""))
    if verdict not in VERDICTS or scope not in ("alert", "detector", "resource"):
        raise ValueError("choose a verdict and a scope")
    resource = str(form.get("resource_id", "")) or None
    if scope == "resource" and not resource:
        raise ValueError("choose the resource")
    days = float(form.get("days") or 7)
    return verdict_record(alert_id, verdict, scope, current_user.name, key_id, time.time(), days,
                          resource_id=resource if scope == "resource" else None, note=form.get("note") or None)


@bp.route("/incidents/<incident_id>/verdicts", methods=["POST"])
@login_required
def submit(incident_id: str) -> Any:
    """Check a signed record, publish it, keep it, audit it."""
    record = (request.get_json(silent=True) or {}).get("record")
    if not isinstance(record, dict):
        return _problem("no record")
    problem = _check(record, incident_id)
    if problem:
        log.info("triage verdict refused reason=%s", problem)
        return _problem(problem)
    try:
        current_app.extensions["privwatch.publish"](record)
    except Exception as exc:  # noqa: BLE001 - any failure to publish is reported to the analyst
        log.warning("triage verdict not published error=%s", type(exc).__name__)
        return _problem("the feedback topic did not take the verdict; try again", 503)
    store().add_verdict(record, incident_id)
    log.info("triage verdict published verdict=%s scope=%s", record["verdict"], record["scope"])
    return jsonify({"ok": True, "verdict_id": record["verdict_id"]})


def _check(record: dict[str, Any], incident_id: str) -> str | None:
    """Why the record may not be published (None: it may)."""
    try:
        doc = Feedback.model_validate(record)
    except ValidationError:
        return "malformed"
    if doc.analyst != current_user.name or doc.key_id not in current_user.analyst.key_ids:
        return "not your key"
    if store().incident_of(doc.alert_id) != incident_id:
        return "not an alert of this incident"
    if parse_alert_id(doc.alert_id)[1] in current_user.analyst.own_ids:
        return "no verdict about yourself"
    signed_at = datetime.fromisoformat(doc.ts).timestamp()
    if abs(signed_at - time.time()) > MAX_SKEW_S:
        return "stale: prepare it again"
    key = current_app.extensions["privwatch.analysts"].key(doc.analyst, doc.key_id)
    if key is None or not verify(record, key):
        return "the signature does not verify with that key: load the right key file"
    if doc.revokes and store().verdict(doc.revokes) is None:
        return "no such verdict"
    return None
