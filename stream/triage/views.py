"""The queue and the incident page, assignment and status; each action is written to the audit log."""

from __future__ import annotations

import hashlib
import time
from typing import Any

from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from detectors.registry import REGISTRY
from stream.triage.chart import chart
from stream.triage.store import LEVELS, STATUSES, QueueFilter, TriageStore

bp = Blueprint("views", __name__)
AGES = {"": "any age", "1": "last hour", "24": "last day", "168": "last week", "720": "last 30 days"}


def store() -> TriageStore:
    return current_app.extensions["privwatch.store"]


def _filters() -> QueueFilter:
    args = request.args
    status = args.get("status", "open")
    level = args.get("level", "medium")
    age = args.get("age", "")
    return QueueFilter(status=status if status in STATUSES else "open", level=level if level in LEVELS else "medium",
                       detector=args.get("detector", "") if args.get("detector", "") in REGISTRY else "",
                       max_age_h=float(age) if age in AGES and age else 0.0,
                       principal=args.get("principal", "").strip()[:256])


@bp.route("/")
@login_required
def queue() -> Any:
    where = _filters()
    now = time.time()
    return render_template("queue.html", incidents=store().queue(where, now), counts=store().counts(where, now),
                           where=where, levels=LEVELS, statuses=STATUSES, detectors=sorted(REGISTRY), ages=AGES,
                           age=request.args.get("age", ""))


@bp.route("/incidents/<incident_id>")
@login_required
def incident(incident_id: str) -> Any:
    found = store().incident(incident_id)
    if found is None:
        target = store().aliased(incident_id)  # Alertmanager's id of a page that joined an earlier incident
        if target is None:
            abort(404)
        return redirect(url_for("views.incident", incident_id=target))
    alerts = store().alerts_of(incident_id)
    analysts = current_app.extensions["privwatch.analysts"]
    return render_template(
        "incident.html", incident=found, alerts=alerts,
        charts={a["alert_id"]: chart(a.get("baseline")) for a in alerts},
        verdicts=store().verdicts_of(incident_id), audit=store().audit_of(incident_id),
        analysts=sorted(analysts.by_name), key_ids=current_user.analyst.key_ids,
        own=found["principal_id"] in current_user.analyst.own_ids,
        runbook_base=current_app.config["PRIVWATCH_RUNBOOK_BASE_URL"].rstrip("/"))


@bp.route("/alerts/<path:alert_id>")
@login_required
def alert(alert_id: str) -> Any:
    """An alert's incident page (the link Alertmanager's ``evidence_url`` and the CLI print)."""
    incident_id = store().incident_of(alert_id)
    if incident_id is None:
        abort(404)
    return redirect(url_for("views.incident", incident_id=incident_id, _anchor=anchor(alert_id)))


def anchor(alert_id: str) -> str:
    """The fragment of an alert on its incident page (ids may hold any character; this holds none)."""
    return "alert-" + hashlib.sha256(alert_id.encode()).hexdigest()[:12]


@bp.route("/incidents/<incident_id>/assign", methods=["POST"])
@login_required
def assign(incident_id: str) -> Any:
    _exists(incident_id)
    who = request.form.get("assignee", "")
    if who and who not in current_app.extensions["privwatch.analysts"].by_name:
        abort(400)
    store().assign(incident_id, current_user.name, who or None)
    return redirect(url_for("views.incident", incident_id=incident_id))


@bp.route("/incidents/<incident_id>/status", methods=["POST"])
@login_required
def status(incident_id: str) -> Any:
    _exists(incident_id)
    wanted = request.form.get("status", "")
    if wanted not in ("closed", "open"):
        abort(400)
    store().set_status(incident_id, current_user.name, wanted)
    return redirect(url_for("views.incident", incident_id=incident_id))


@bp.route("/audit")
@login_required
def audit() -> Any:
    return render_template("audit.html", audit=store().audit_of(None, limit=500))


def _exists(incident_id: str) -> None:
    if store().incident(incident_id) is None:
        abort(404)
