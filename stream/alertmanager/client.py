"""The one HTTP call delivery makes: POST a JSON list to Alertmanager's ``/api/v2/alerts``, with
bearer or basic authentication and TLS (a CA to verify Alertmanager, a client certificate) when
configured."""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from stream.errors import PrivwatchError


class AlertmanagerError(PrivwatchError):
    """A post to Alertmanager failed. ``retryable`` is False for a request it will never accept."""

    def __init__(self, message: str, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class Connection:
    """Where Alertmanager is and how to talk to it."""

    url: str
    bearer_token: str | None = None
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    timeout_s: float = 5.0

    def __repr__(self) -> str:  # never the token or password
        return f"Connection(url={self.url!r})"

    def headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.bearer_token:
            headers["Authorization"] = f"Bearer {self.bearer_token}"
        elif self.username is not None:
            pair = f"{self.username}:{self.password or ''}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        return headers

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.url.startswith("https:"):
            return None
        context = ssl.create_default_context(cafile=self.ca_file)
        if self.cert_file:
            context.load_cert_chain(self.cert_file, self.key_file)
        return context


def post_alerts(connection: Connection | str, alerts: list[dict[str, Any]], timeout_s: float | None = None) -> None:
    """Post ``alerts``; raise :class:`AlertmanagerError` on any failure.

    4xx other than 408/429 means Alertmanager rejected the payload (it stores the valid alerts of a
    batch and reports the invalid ones), so retrying the same batch cannot help. 401 and 403 are
    retried: a credential being rotated must not lose pages.
    """
    if isinstance(connection, str):
        connection = Connection(connection)
    body = json.dumps(alerts, ensure_ascii=False).encode("utf-8")
    request = urllib.request.Request(connection.url.rstrip("/") + "/api/v2/alerts", data=body, method="POST",
                                     headers=connection.headers())
    try:
        with urllib.request.urlopen(request, timeout=timeout_s or connection.timeout_s,  # noqa: S310 (configured)
                                    context=connection.ssl_context()) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read(500).decode("utf-8", "replace")
        retryable = exc.code >= 500 or exc.code in (401, 403, 408, 429)
        raise AlertmanagerError(f"HTTP {exc.code}: {detail}", retryable=retryable) from None
    except (urllib.error.URLError, OSError, ssl.SSLError) as exc:  # refused, DNS, timeout, reset, TLS
        raise AlertmanagerError(f"{type(exc).__name__}: {exc}") from None
