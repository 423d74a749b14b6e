"""``privwatch triage serve``'s parts together: the database, the alerts feed, the app, waitress."""

from __future__ import annotations

import logging
import threading
from typing import Any

from waitress.server import create_server

from stream.errors import ConfigError, PortError
from stream.feedback.analysts import load_analysts
from stream.feedback.keys import read_secret
from stream.feedback.publish import FeedbackPublisher
from stream.kafka import clients
from stream.settings import Settings
from stream.triage.app import create_app
from stream.triage.ingest import AlertsFeed
from stream.triage.schema import connect
from stream.triage.store import TriageStore

log = logging.getLogger(__name__)


class TriageServer:
    """The triage app served on ``triage_host:triage_port``, its database fed from the alerts topic."""

    def __init__(self, settings: Settings) -> None:
        analysts = load_analysts(settings.analysts_file)
        if not any(a.password_hash for a in analysts.by_name.values()):
            raise ConfigError("no analyst can sign in: set analysts_file with password hashes "
                              "(privwatch triage passwd makes one)")
        session_key = read_secret(settings.triage_session_key, "triage_session_key")
        self.store = TriageStore(connect(settings.triage_database_url), settings.correlation_window_s)
        self.publisher = FeedbackPublisher(clients.producer(settings), settings.feedback_topic)
        self.feed = AlertsFeed(clients.consumer(settings, group_id=settings.triage_group_id,
                                                client_id=f"{settings.client_id}-triage"),
                               settings.alerts_topic, self.store)
        secure = bool(settings.triage_url and settings.triage_url.startswith("https://"))
        self.app = create_app(self.store, analysts, self.publisher, session_key, settings.runbook_base_url, secure,
                              settings.triage_trusted_proxies)
        try:
            self.server: Any = create_server(self.app, host=settings.triage_host, port=settings.triage_port,
                                             threads=4, ident="privwatch-triage")
        except OSError as exc:
            raise PortError(f"cannot listen on {settings.triage_host}:{settings.triage_port}: {exc.strerror}") from None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.server.effective_host}:{self.server.effective_port}"

    def start(self) -> TriageServer:
        """Serve in a background thread (tests); :meth:`run` serves in this one."""
        self.feed.start()
        self._thread = threading.Thread(target=self.server.run, name="triage-http", daemon=True)
        self._thread.start()
        return self

    def run(self) -> None:
        self.feed.start()
        log.info("triage serving url=%s", self.url)
        try:
            self.server.run()
        finally:
            self.stop()

    def stop(self) -> None:
        self.server.close()
        self.feed.stop()
        self.feed.join(timeout=10)
        self.publisher.close()
        self.store.engine.dispose()
