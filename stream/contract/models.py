"""Pydantic models of the public contract documents in this package (``stream/contract/*.schema.json``).

Field names are the public contract: never rename them. Unknown extra fields are accepted and
ignored (the schemas say ``additionalProperties: true``). Numbers are bounded a little more
tightly than the schemas (``MAX_COUNT``) so that absurd values are dead-lettered instead of
poisoning baselines. Text that ends up in alert titles, reasons and pages (ids, names, the source's
fields) is printable: no control, bidirectional-override or zero-width characters (:data:`PRINTABLE`);
``ts`` is RFC 3339 with an offset, nothing else (:data:`RFC3339`). Duplicate keys are refused before
validation (:mod:`stream.contract.decode`).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal, NotRequired

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetPydanticSchema,
    StrictBool,
    StrictInt,
    TypeAdapter,
    model_validator,
)
from pydantic_core import core_schema
from typing_extensions import TypedDict

#: Counts above this are treated as corrupt input (2**53: the largest integer every JSON reader keeps exact).
MAX_COUNT = 2**53
#: Text without C0/C1 controls, soft hyphen, Arabic letter mark, Mongolian vowel separator, zero-width
#: characters and bidirectional marks (U+200B-U+200F), line/paragraph separators and bidirectional
#: embeddings and overrides (U+2028-U+202E), word joiner, invisible operators and bidirectional
#: isolates (U+2060-U+206F), the byte-order mark and interlinear annotation characters: what could
#: hide or reorder text in a title or a page (the same class in the JSON Schemas).
PRINTABLE = ("^[^\u0000-\u001f\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f"
             "\ufeff\ufff9-\ufffb]*$")
#: RFC 3339 date-time with an offset (section 5.6); the JSON Schemas' ``ts`` pattern
RFC3339 = r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
_RFC3339 = re.compile(RFC3339)


_RFC3339_MESSAGE = "ts must be an RFC 3339 date-time with an offset, such as 2026-11-26T09:14:03Z"


def _rfc3339(value: Any) -> Any:
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise ValueError(_RFC3339_MESSAGE)
    return value


def _rfc3339_then(source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
    """:func:`_rfc3339` inside pydantic-core (the same check and error, no Python call per event):
    a string matching :data:`RFC3339`, then the aware date-time it spells."""
    checked = core_schema.custom_error_schema(core_schema.str_schema(pattern=RFC3339), custom_error_type="value_error",
                                              custom_error_context={"error": _RFC3339_MESSAGE})
    return core_schema.chain_schema([checked, handler(source)])


# Printable text (PRINTABLE) of bounded length; Id*: non-empty.
Id128 = Annotated[str, Field(min_length=1, max_length=128, pattern=PRINTABLE)]
Id256 = Annotated[str, Field(min_length=1, max_length=256, pattern=PRINTABLE)]
Id512 = Annotated[str, Field(min_length=1, max_length=512, pattern=PRINTABLE)]
Text8 = Annotated[str, Field(max_length=8, pattern=PRINTABLE)]
Text64 = Annotated[str, Field(max_length=64, pattern=PRINTABLE)]
Text128 = Annotated[str, Field(max_length=128, pattern=PRINTABLE)]
Text256 = Annotated[str, Field(max_length=256, pattern=PRINTABLE)]
Text512 = Annotated[str, Field(max_length=512, pattern=PRINTABLE)]
Count = Annotated[StrictInt, Field(ge=0, le=MAX_COUNT)]
Timestamp = Annotated[AwareDatetime, GetPydanticSchema(_rfc3339_then)]
#: an alert id: ``detector:principal_id:event_id:tag`` (detectors/alerts.py)
ALERT_ID_PATTERN = r"^[^:]+:[^:]+:[^:]+:[0-9a-f]{16}$"
VERDICT_ID_PATTERN = r"^[A-Za-z0-9_-]{16,64}$"
_AWARE: TypeAdapter[datetime] = TypeAdapter(AwareDatetime)


def _kept_rfc3339(value: str) -> str:
    """A date-time string with its offset, checked (RFC 3339, as input events' ``ts``) and kept as
    written: it is what was signed."""
    _rfc3339(value)
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
    id: Id256
    kind: NotRequired[Literal["human", "service"]]
    department: NotRequired[Text128 | None]
    role: NotRequired[Text128 | None]
    #: the people directory's admin flag (None: unknown)
    admin: NotRequired[StrictBool | None]


class Resource(TypedDict):
    __pydantic_config__ = _CONFIG  # type: ignore[misc]
    id: Id512
    kind: NotRequired[Text64 | None]
    sensitivity: NotRequired[Sensitivity]
    categories: NotRequired[list[Text64]]


class Source(TypedDict, total=False):
    __pydantic_config__ = _CONFIG  # type: ignore[misc]
    ip: Text64 | None
    country: Text8 | None
    device_id: Text128 | None
    user_agent: Text512 | None


class Provenance(TypedDict):
    """Where an event came from (``privwatch ingest``): the source format and the raw record's id."""

    __pydantic_config__ = _CONFIG  # type: ignore[misc]
    format: Annotated[str, Field(min_length=1, max_length=32, pattern=PRINTABLE)]
    record_id: Id256


class AccessEvent(TypedDict):
    __pydantic_config__ = _CONFIG  # type: ignore[misc]
    type: Literal["access"]
    event_id: Id128
    ts: Timestamp
    principal: Principal
    action: Literal["read", "query", "export", "download", "write", "delete", "share"]
    resource: Resource
    records: NotRequired[Count]
    bytes: NotRequired[Count]
    subjects: NotRequired[Count]
    subject_refs: NotRequired[Annotated[list[Text128], Field(max_length=1000)]]
    outcome: Literal["allowed", "denied"]
    source: NotRequired[Source | None]
    purpose: NotRequired[Text256 | None]
    provenance: NotRequired[Provenance]


class PermissionEvent(TypedDict):
    __pydantic_config__ = _CONFIG  # type: ignore[misc]
    type: Literal["permission"]
    event_id: Id128
    ts: Timestamp
    actor: Principal
    target: Principal
    change: Literal["grant", "revoke"]
    permission: Id256
    resource: NotRequired[Resource | None]
    privileged: NotRequired[StrictBool]
    outcome: Literal["allowed", "denied"]
    source: NotRequired[Source | None]
    ticket: NotRequired[Text256 | None]
    provenance: NotRequired[Provenance]


class Application(TypedDict, total=False):
    __pydantic_config__ = _CONFIG  # type: ignore[misc]
    id: Text256 | None
    name: Text256 | None


class AuthenticationEvent(TypedDict):
    """A sign-in attempt (``authentication-event.schema.json``)."""

    __pydantic_config__ = _CONFIG  # type: ignore[misc]
    type: Literal["authentication"]
    event_id: Id128
    ts: Timestamp
    principal: Principal
    outcome: Literal["allowed", "denied"]
    method: NotRequired[Text64 | None]
    mfa: NotRequired[StrictBool | None]
    application: NotRequired[Application | None]
    failure_reason: NotRequired[Text256 | None]
    source: NotRequired[Source | None]
    provenance: NotRequired[Provenance]


InputEvent = Annotated[AccessEvent | PermissionEvent | AuthenticationEvent, Field(discriminator="type")]
#: Validates raw JSON bytes of one input event into a dict (datetimes parsed, defaults absent).
INPUT_ADAPTER: TypeAdapter[AccessEvent | PermissionEvent | AuthenticationEvent] = TypeAdapter(InputEvent)


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
    incident: Incident | None = None
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
    ts: Annotated[str, AfterValidator(_kept_rfc3339)]
    expires: Annotated[str, AfterValidator(_kept_rfc3339)]
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
