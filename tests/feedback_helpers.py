"""Analysts, keys and signed verdict records for the feedback tests."""

from __future__ import annotations

from typing import Any

import orjson

from stream.feedback.analysts import Analysts, parse_analysts
from stream.feedback.signing import generate, public_text, sign, verdict_record
from stream.feedback.verify import VerdictChecker

ALERT_KEY = b"test-alert-id-key-of-32-bytes-at-least"
ALICE = generate()
BOB = generate()
MALLORY = generate()  # a key no configured analyst holds
#: alice (analyst, own principal u-alice); bob (analyst, and also the principal u-9 of the test streams)
ANALYSTS_TOML = f"""
[[analyst]]
name = "alice"
principal_ids = ["u-alice"]
keys = [{{id = "alice-1", public_key = "{public_text(ALICE)}"}}]

[[analyst]]
name = "bob"
principal_ids = ["u-9"]
keys = [{{id = "bob-1", public_key = "{public_text(BOB)}"}}]
"""


def analysts() -> Analysts:
    return parse_analysts(ANALYSTS_TOML)


def checker(**kwargs: Any) -> VerdictChecker:
    return VerdictChecker(analysts(), ALERT_KEY, **kwargs)


def signed(alert_id: str, now: float, verdict: str = "false_positive", scope: str = "detector",
           analyst: str = "alice", key_id: str = "alice-1", key: Any = ALICE, days: float = 7.0,
           **extra: Any) -> dict[str, Any]:
    """A verdict record signed with ``key`` (alice's by default)."""
    return sign(verdict_record(alert_id, verdict, scope, analyst, key_id, now, days, **extra), key)


def raw(doc: dict[str, Any]) -> bytes:
    return orjson.dumps(doc)
