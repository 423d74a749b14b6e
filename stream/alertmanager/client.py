"""The one HTTP call the sink makes: POST a JSON list to Alertmanager's ``/api/v2/alerts``."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from stream.errors import PrivwatchError


class AlertmanagerError(PrivwatchError):
    """A post to Alertmanager failed. ``retryable`` is False for a request it will never accept."""

    def __init__(self, message: str, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


def post_alerts(base_url: str, alerts: list[dict[str, Any]], timeout_s: float) -> None:
    """Post ``alerts``; raise :class:`AlertmanagerError` on any failure.

    4xx other than 408/429 means Alertmanager rejected the payload (it stores the valid alerts of a
    batch and reports the invalid ones), so retrying the same batch cannot help.
    """
    body = json.dumps(alerts, ensure_ascii=False).encode("utf-8")
    request = urllib.request.Request(
        base_url.rstrip("/") + "/api/v2/alerts", data=body, method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 (configured URL)
            response.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read(500).decode("utf-8", "replace")
        retryable = exc.code >= 500 or exc.code in (408, 429)
        raise AlertmanagerError(f"HTTP {exc.code}: {detail}", retryable=retryable) from None
    except (urllib.error.URLError, OSError) as exc:  # refused, DNS, timeout, reset
        raise AlertmanagerError(f"{type(exc).__name__}: {exc}") from None
