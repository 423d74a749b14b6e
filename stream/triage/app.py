"""The triage web app (Flask): sign-in, the incident queue, incident pages, signed verdicts.

:func:`create_app` wires the parts; ``privwatch triage serve`` (:mod:`stream.triage.cli`) serves it
with waitress and feeds its database from the alerts topic (:mod:`stream.triage.ingest`).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response
from flask_wtf.csrf import CSRFProtect
from werkzeug.middleware.proxy_fix import ProxyFix

from stream.feedback.analysts import Analysts
from stream.triage import auth, verdicts, views
from stream.triage.store import TriageStore

#: what pages may load: only this app's own scripts and styles (no inline script, no third party)
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
       "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


def create_app(store: TriageStore, analysts: Analysts, publish: Callable[[dict[str, Any]], None],
               session_key: bytes | None = None, runbook_base_url: str = "", secure_cookies: bool = False,
               trusted_proxies: int = 0) -> Flask:
    """The app over ``store``, signing in ``analysts``, handing verdicts to ``publish``.

    ``session_key`` signs session cookies (None: a random one, so sessions end at a restart);
    ``secure_cookies`` when served over HTTPS; ``trusted_proxies``: how many reverse proxies' entries
    of X-Forwarded-For to believe for the client's address (failed sign-ins are throttled by it)."""
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=session_key or secrets.token_bytes(32),
        SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax", SESSION_COOKIE_SECURE=secure_cookies,
        REMEMBER_COOKIE_HTTPONLY=True, WTF_CSRF_TIME_LIMIT=8 * 3600,
        PRIVWATCH_RUNBOOK_BASE_URL=runbook_base_url,
    )
    if trusted_proxies:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=trusted_proxies, x_proto=trusted_proxies)  # type: ignore[method-assign]
    app.extensions["privwatch.store"] = store
    app.extensions["privwatch.analysts"] = analysts
    app.extensions["privwatch.publish"] = publish
    CSRFProtect(app)
    auth.install(app)
    app.register_blueprint(views.bp)
    app.register_blueprint(verdicts.bp)
    app.jinja_env.filters["when"] = _when
    app.jinja_env.filters["anchor"] = views.anchor

    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-store"
        return response

    return app


def _when(ts: float | str) -> str:
    """An epoch second (or RFC 3339 string) as UTC to the second."""
    when = datetime.fromisoformat(ts) if isinstance(ts, str) else datetime.fromtimestamp(ts, UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
