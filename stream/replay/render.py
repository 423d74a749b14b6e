"""Alerts rendered for a person on a terminal (the demo and `privwatch replay --pretty`)."""

from __future__ import annotations

from typing import Any

COLOURS = {"critical": "\033[1;31m", "high": "\033[31m", "medium": "\033[33m", "low": "\033[36m", "info": ""}
RESET = "\033[0m"


def render_alert(alert: dict[str, Any], colour: bool = True) -> str:
    """One alert as a short block: level, severity, detector, who, title, then each reason.

    >>> print(render_alert({"level": "high", "severity": 71.5, "detector": "volume", "principal_id": "u-1",
    ...                     "title": "Bulk export", "ts": "2026-10-12T14:03:00.000Z", "reasons": ["big"]},
    ...                    colour=False))
    [HIGH 72] volume  u-1  Bulk export  (2026-10-12 14:03 UTC)
        - big
    """
    start, end = (COLOURS.get(alert["level"], ""), RESET) if colour else ("", "")
    when = alert["ts"][:16].replace("T", " ") + " UTC"
    head = (f"{start}[{alert['level'].upper()} {alert['severity']:.0f}]{end} {alert['detector']}  "
            f"{alert['principal_id']}  {alert['title']}  ({when})")
    return "\n".join([head, *(f"    - {reason}" for reason in alert["reasons"])])
