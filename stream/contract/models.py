"""Pydantic models of the public contract documents in this package (``stream/contract/*.schema.json``).

Field names are the public contract: never rename them. Unknown extra fields are accepted and
ignored (the schemas say ``additionalProperties: true``). Numbers are bounded a little more
tightly than the schemas (``MAX_COUNT``) so that absurd values are dead-lettered instead of
poisoning baselines.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, NotRequired

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    TypeAdapter,
    model_validator,
)
from typing_extensions import TypedDict

#: Counts above this are treated as corrupt input (2**53: the largest integer every JSON reader keeps exact).
MAX_COUNT = 2**53

Count = Annotated[StrictInt, Field(ge=0, le=MAX_COUNT)]
#: an alert id: ``detector:principal_id:event_id:tag`` (detectors/alerts.py)
ALERT_ID_PATTERN = r"^[^:]+:[^:]+:[^:]+:[0-9a-f]{16}$"
VERDICT_ID_PATTERN = r"^[A-Za-z0-9_-]{16,64}$"
_AWARE: TypeAdapter[datetime] = TypeAdapter(AwareDatetime)


def _rfc3339(value: str) -> str:
    """A date-time string with its offset, checked and kept as written (it is what was signed)."""
    _AWARE.validate_python(value)
    return value
Sensitivity = Literal["public", "internal", "confidential", "restricted"] | None


class _Doc(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


# Input events are TypedDicts validated by pydantic-core: the same checks as models, about 40% less
# time per event than BaseModel instances (docs/performance.md), and the hot path reads dicts.
_CONFIG = ConfigDict(extra="ignore")


class Principal(TypedDict):
    __pydantic_config__ = _CONFIG  # type: ignore[misc]
    id: Annotated[str, Field(min_length=1, max_length=256)]
    kind: NotRequired[Literal["human", "service"]]
    department: NotRequired[Annotated[str, Field(max_length=128)] | None]
    role: NotRequired[Annotated[str, Field(max_length=128)] | None]


class Resource(TypedDict):
    __pydantic_config__ = _CONFIG  # type: ignore[misc]
    id: Annotated[str, Field(min_length=1, max_length=512)]
    kind: NotRequired[Annotated[str, Field(max_length=64)] | None]
    sensitivity: NotRequired[Sensitivity]
    categories: NotRequired[list[Annotated[str, Field(max_length=64)]]]


class Source(TypedDict, total=False):
    __pydantic_config__ = _CONFIG  # type: ignore[misc]
    ip: Annotated[str, Field(max_length=64)] | None
    country: Annotated[str, Field(max_length=8)] | None
    device_id: Annotated[str, Field(max_length=128)] | None
    user_agent: Annotated[str, Field(max_length=512)] | None


class AccessEvent(TypedDict):
    __pydantic_config__ = _CONFIG  # type: ignore[misc]
    type: Literal["access"]
    event_id: Annotated[str, Field(min_length=1, max_length=128)]
    ts: AwareDatetime
    principal: Principal
    action: Literal["read", "query", "export", "download", "write", "delete", "share"]
    resource: Resource
    records: NotRequired[Count]
    bytes: NotRequired[Count]
    subjects: NotRequired[Count]
    subject_refs: NotRequired[Annotated[list[Annotated[str, Field(max_length=128)]], Field(max_length=1000)]]
    outcome: Literal["allowed", "denied"]
    source: NotRequired[Source | None]
    purpose: NotRequired[Annotated[str, Field(max_length=256)] | None]


class PermissionEvent(TypedDict):
    __pydantic_config__ = _CONFIG  # type: ignore[misc]
    type: Literal["permission"]
    event_id: Annotated[str, Field(min_length=1, max_length=128)]
    ts: AwareDatetime
    actor: Principal
    target: Principal
    change: Literal["grant", "revoke"]
    permission: Annotated[str, Field(min_length=1, max_length=256)]
    resource: NotRequired[Resource | None]
    privileged: NotRequired[StrictBool]
    outcome: Literal["allowed", "denied"]
    source: NotRequired[Source | None]
    ticket: NotRequired[Annotated[str, Field(max_length=256)] | None]


InputEvent = Annotated[AccessEvent | PermissionEvent, Field(discriminator="type")]
#: Validates raw JSON bytes of one input event into a dict (datetimes parsed, defaults absent).
INPUT_ADAPTER: TypeAdapter[AccessEvent | PermissionEvent] = TypeAdapter(InputEvent)


class SuppressedBy(_Doc):
    """The analyst verdict that turned an alert into an ``info`` one (``suppressed_by`` of an alert)."""

    verdict_id: str
    verdict: Literal["false_positive", "benign"]
    scope: Literal["alert", "detector", "resource"]
    analyst: str
    until: datetime
    resource_id: str | None = None


class Alert(_Doc):
    type: Literal["alert"] = "alert"
    alert_id: str = Field(pattern=ALERT_ID_PATTERN)
    ts: datetime
    detected_at: datetime
    detector: str
    principal_id: str
    related_principal_ids: list[str] = []
    resource_ids: list[str] = []
    severity: float = Field(ge=0, le=100)
    level: Literal["info", "low", "medium", "high", "critical"]
    score: float | None = None
    title: str
    reasons: list[str] = Field(min_length=1)
    baseline: dict | None = None
    evidence_event_ids: list[str] = Field(min_length=1, max_length=100)
    model_version: str | None = None
    suppressed_by: SuppressedBy | None = None


class Feedback(_Doc):
    """An analyst's signed verdict on an alert, or the revoke of one (``feedback.schema.json``).

    The times stay the strings that were signed; :mod:`stream.feedback.verify` parses them."""

    type: Literal["feedback"]
    verdict_id: str = Field(pattern=VERDICT_ID_PATTERN)
    alert_id: str = Field(min_length=1, max_length=2048)
    verdict: Literal["true_positive", "false_positive", "benign", "revoke"]
    scope: Literal["alert", "detector", "resource"]
    resource_id: str | None = Field(default=None, min_length=1, max_length=512)
    revokes: str | None = Field(default=None, pattern=VERDICT_ID_PATTERN)
    ts: Annotated[str, AfterValidator(_rfc3339)]
    expires: Annotated[str, AfterValidator(_rfc3339)]
    analyst: str = Field(min_length=1, max_length=128)
    key_id: str = Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")
    note: str | None = Field(default=None, max_length=2000)
    signature: str = Field(pattern=r"^[A-Za-z0-9_-]{86}$")

    @model_validator(mode="after")
    def _scoped(self) -> Feedback:
        if self.scope == "resource" and self.resource_id is None:
            raise ValueError("scope resource needs resource_id")
        if self.verdict == "revoke" and self.revokes is None:
            raise ValueError("a revoke needs revokes")
        return self
