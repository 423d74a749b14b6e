"""Sign-in for the analysts of the analysts file (Flask-Login sessions; passwords checked against their
werkzeug hashes). Nothing in the app is anonymous: every view but the sign-in page requires a session.

Failed sign-ins are throttled (Flask-Limiter, in memory): ``FAILED_PER_ADDRESS`` from one client address
and ``FAILED_PER_NAME`` against one analyst name from anywhere, so that guessing a password takes
years rather than hours; a successful sign-in does not count. Past a limit the answer is 429 until the
window moves on. Behind a reverse proxy, set ``triage_trusted_proxies`` so the client's address is
read from X-Forwarded-For; otherwise every analyst shares the proxy's address and its limit.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, current_app, flash, redirect, render_template, request, url_for
from flask_limiter import Limiter, RequestLimit
from flask_limiter.util import get_remote_address
from flask_login import LoginManager, UserMixin, login_required, login_user, logout_user
from werkzeug.security import check_password_hash

from stream.feedback.analysts import Analyst, Analysts

log = logging.getLogger(__name__)
bp = Blueprint("auth", __name__)
#: compared against when the name is unknown, so a wrong name costs the same time as a wrong password
_DUMMY_HASH = "scrypt:32768:8:1$privwatch$" + "0" * 128
#: failed sign-ins allowed from one client address
FAILED_PER_ADDRESS = "10 per minute;50 per hour"
#: failed sign-ins allowed against one analyst name, from any address
FAILED_PER_NAME = "20 per hour;100 per day"


class User(UserMixin):
    """A signed-in analyst."""

    def __init__(self, analyst: Analyst) -> None:
        self.analyst = analyst
        self.id = analyst.name

    @property
    def name(self) -> str:
        return self.analyst.name


def analysts() -> Analysts:
    return current_app.extensions["privwatch.analysts"]


def install(app: Any) -> None:
    manager = LoginManager(app)
    manager.login_view = "auth.login"
    manager.session_protection = "strong"

    @manager.user_loader
    def load(name: str) -> User | None:
        known = analysts().by_name.get(name)
        return User(known) if known is not None and known.password_hash else None

    app.register_blueprint(bp)
    _throttle(app)


def _throttle(app: Any) -> None:
    """Count failed sign-ins (any answer but the redirect of a success) per address and per name."""
    limiter = Limiter(get_remote_address, app=app, storage_uri="memory://", on_breach=_breached)
    failed = {"methods": ["POST"], "deduct_when": lambda response: response.status_code != 302}
    view = app.view_functions["auth.login"]
    view = limiter.limit(FAILED_PER_ADDRESS, **failed)(view)  # type: ignore[arg-type]
    view = limiter.limit(FAILED_PER_NAME, key_func=_named, **failed)(view)  # type: ignore[arg-type]
    app.view_functions["auth.login"] = view


def _named() -> str:
    return "name:" + request.form.get("name", "")


def _breached(limit: RequestLimit) -> Response | None:
    log.info("triage sign-in throttled limit=%s", limit.limit)  # which limit, not who
    return None


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    if request.method == "POST":
        name = request.form.get("name", "")
        known = analysts().by_name.get(name)
        stored = known.password_hash if known is not None and known.password_hash else _DUMMY_HASH
        if check_password_hash(stored, request.form.get("password", "")) and known is not None:
            login_user(User(known))
            current_app.extensions["privwatch.store"].record(name, "sign_in", None)
            log.info("triage sign-in succeeded")
            return redirect(_safe_next(request.args.get("next")))
        log.info("triage sign-in failed")
        flash("Unknown analyst or wrong password.")
    return render_template("login.html")


def _safe_next(target: str | None) -> str:
    """Only a path on this app (no scheme, no host): an open redirect would help phishing."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("views.queue")


@bp.route("/logout", methods=["POST"])
@login_required
def logout() -> Any:
    logout_user()
    return redirect(url_for("auth.login"))
