"""The flat, typed event that every detector sees.

``stream`` decodes and validates contract documents and turns each into an :class:`Event`;
detectors never see Kafka records or JSON. Permission events are attributed to their *target*
(the principal that gains or loses the permission), so that one principal's access and permission
events share state and a partition.
"""

from __future__ import annotations

from dataclasses import dataclass

ACCESS = "access"
PERMISSION = "permission"

SENSITIVITY_RANK = {None: 0, "public": 0, "internal": 1, "confidential": 2, "restricted": 3}
#: Data categories whose first touch pages even without history (special-category data, GDPR art. 9).
SPECIAL_CATEGORIES = frozenset({"health", "minors", "biometric", "genetic"})


@dataclass(slots=True)
class Event:
    """One access or permission event, flattened.

    ``ts`` is event time in seconds since the epoch (UTC); ``tz_offset_s`` is the offset the
    producer wrote, so hour-of-day features can use local time.

    >>> e = Event(kind="access", event_id="e1", ts=0.0, principal_id="u-1", action="export", records=5)
    >>> e.is_access, e.sensitivity_rank
    (True, 0)
    """

    # Field order is part of the interface: stream.decode.to_event constructs events positionally.
    kind: str
    event_id: str
    ts: float
    principal_id: str
    principal_kind: str = "human"
    department: str | None = None
    role: str | None = None
    tz_offset_s: int = 0
    # access
    action: str = ""
    resource_id: str = ""
    resource_kind: str | None = None
    sensitivity: str | None = None
    categories: tuple[str, ...] = ()
    records: int = 0
    bytes: int = 0
    subjects: int = 0
    subject_refs: tuple[str, ...] = ()
    outcome: str = "allowed"
    ip: str | None = None
    country: str | None = None
    device_id: str | None = None
    user_agent: str | None = None
    purpose: str | None = None
    # permission
    actor_id: str | None = None
    actor_role: str | None = None
    actor_department: str | None = None
    change: str | None = None
    permission: str | None = None
    privileged: bool = False
    ticket: str | None = None

    @property
    def is_access(self) -> bool:
        return self.kind == ACCESS

    @property
    def sensitivity_rank(self) -> int:
        return SENSITIVITY_RANK.get(self.sensitivity, 0)

    @property
    def peer_group(self) -> str:
        """Department, refined by role: the group whose habits are this principal's norm."""
        return f"{self.department or '-'}/{self.role or '-'}"
