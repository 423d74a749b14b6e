"""Pydantic models of the public contract documents in this package (``stream/contract/*.schema.json``).

Field names are the public contract: never rename them. Unknown extra fields are accepted and
ignored (the schemas say ``additionalProperties: true``). Numbers are bounded a little more
tightly than the schemas (``MAX_COUNT``) so that absurd values are dead-lettered instead of
poisoning baselines.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, NotRequired

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictBool, StrictInt, TypeAdapter
from typing_extensions import TypedDict

#: Counts above this are treated as corrupt input (2**53: the largest integer every JSON reader keeps exact).
MAX_COUNT = 2**53

Count = Annotated[StrictInt, Field(ge=0, le=MAX_COUNT)]
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


class Incident(_Doc):
    """A paging alert's incident (``alert.incident``), as :mod:`stream.alertmanager.correlate` keeps it."""

    incident_id: str
    detector: str
    detectors: list[str] = []
    ts: datetime
    first_ts: datetime | None = None
    last_ts: datetime
    severity: float = Field(ge=0, le=100)
    level: Literal["info", "low", "medium", "high", "critical"]
    title: str
    reasons: list[str]
    evidence_event_ids: list[str]
    alert_ids: list[str]
    resource_ids: list[str] = []
    related_principal_ids: list[str] = []
    updates: int = Field(ge=1)


class Alert(_Doc):
    type: Literal["alert"] = "alert"
    alert_id: str
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
    incident: Incident | None = None


class Feedback(_Doc):
    """An analyst's verdict on an alert, read from the feedback topic (docs/operations.md)."""

    type: Literal["feedback"]
    alert_id: str = Field(min_length=1, max_length=512)
    verdict: Literal["true_positive", "false_positive", "benign"]
    ts: AwareDatetime
    analyst: str | None = Field(default=None, max_length=256)
    note: str | None = Field(default=None, max_length=2000)
    #: optional: scope a false_positive allow-list to one resource of the alert
    resource_id: str | None = Field(default=None, max_length=512)
