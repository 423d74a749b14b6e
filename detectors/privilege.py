"""Privilege changes: self-grants, grants by non-admins, privileged grants without a ticket, and a
grant followed within ``window_s`` by a bulk read or export of the granted resource.

Who is an admin is configuration (``admin_roles``, ``admin_departments``; none by default) or the
people directory's admin flag on the actor (:func:`~detectors.compact.admin_status`): an actor whose
admin status is unknown is never taken for a non-admin.

Rules need no history (``needs_history=False``) and carry a ``min_severity`` for their certainty.
Pending grants are kept per principal (at most ``max_pending``, expiring after ``window_s``).
A grant only makes a following bulk read suspicious when the granted resource is *new* to the
principal: an unticketed re-grant of a table the principal already works with (a routine fix of an
expired permission) is no reason to page. Resources a principal has used are kept in a bounded
seen-set of 32-bit hashes (``cap_resources``).
"""

from __future__ import annotations

from typing import Any, Final

from mypy_extensions import mypyc_attr

from detectors.admins import admin_status, is_admin
from detectors.base import Detector, Finding, Profile
from detectors.compact import SeenSet, restore_slots, slot_state
from detectors.events import ACCESS, Event
from detectors.volume import EXPORT_ACTIONS

#: (rule, score, min severity, title) in decreasing order of certainty
RULES: Final = {
    "self_grant": (9.0, 85.0, "Principal granted itself {perm}"),
    "non_admin_grant": (7.0, 70.0, "{perm} granted by a non-admin"),
    "privileged_no_ticket": (5.0, 60.0, "Privileged {perm} granted without a ticket"),
}


#: _Pending's attributes (its ``__slots__``; also what its pickled state names)
_PENDING_SLOTS = ("resource_id", "permission", "ts", "event_id", "suspicious", "why")


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)  # see detectors/native.py
class _Pending:
    __slots__ = _PENDING_SLOTS

    def __init__(self, event: Event, suspicious: bool, why: str) -> None:
        self.resource_id = event.resource_id
        self.permission = event.permission or ""
        self.ts = event.ts
        self.event_id = event.event_id
        self.suspicious = suspicious
        self.why = why

    def __getstate__(self) -> dict[str, Any]:
        return slot_state(self, _PENDING_SLOTS)

    def __setstate__(self, state: Any) -> None:
        restore_slots(self, state)


class Privilege(Detector):
    """Rule-like findings on permission events, and grant-then-bulk-read sequences."""

    name = "privilege"
    per_principal = ("pending_", "used_")

    def __init__(
        self,
        window_s: float = 3600.0,
        bulk_records: int = 1000,
        max_pending: int = 4,
        cap_resources: int = 24,
        admin_roles: tuple[str, ...] = (),
        admin_departments: tuple[str, ...] = (),
    ):
        self.window_s = window_s
        self.bulk_records = bulk_records
        self.max_pending = max_pending
        self.cap_resources = cap_resources
        self.admin_roles = admin_roles
        self.admin_departments = admin_departments
        self.pending_: dict[str, list[_Pending]] = {}
        #: principal -> resources it has accessed (hashes), to tell a new resource from a known one
        self.used_: dict[str, SeenSet] = {}

    def _rules(self, event: Event) -> list[str]:
        if event.change != "grant":
            return []
        hits = []
        if event.actor_id is not None and event.actor_id == event.principal_id:
            hits.append("self_grant")
        status = admin_status(event.actor_admin, event.actor_role, event.actor_department, self.admin_roles,
                              self.admin_departments)
        if status is False:
            hits.append("non_admin_grant")
        if event.privileged and not event.ticket:
            hits.append("privileged_no_ticket")
        return hits

    def score_one(self, event: Event, profile: Profile) -> Finding | None:
        if event.kind == ACCESS:
            return self._score_use(event)
        hits = self._rules(event)
        if not hits:
            return None
        score, floor, title = RULES[hits[0]]
        denied = event.outcome != "allowed"
        routine = self._routine_self_grant(event, hits)
        perm = event.permission or "a permission"
        reasons = [
            f"{event.change} of {perm!r} to {event.principal_id} by {event.actor_id} "
            f"(role {event.actor_role!r}, department {event.actor_department!r}, directory admin flag "
            f"{event.actor_admin!r})",
            f"privileged: {event.privileged}; ticket: {event.ticket or 'none'}; outcome: {event.outcome}",
            "rules matched: " + ", ".join(hits),
        ]
        return Finding(
            detector=self.name,
            event=event,
            score=score + len(hits) - 1 - (3.0 if denied else 0.0),
            title=title.format(perm=perm) + (" (denied)" if denied else ""),
            reasons=reasons,
            evidence_event_ids=[event.event_id],
            baseline={
                "admin_roles": list(self.admin_roles),
                "admin_departments": list(self.admin_departments),
            },
            resource_ids=[event.resource_id] if event.resource_id else [],
            related_principal_ids=[event.actor_id] if event.actor_id else [],
            min_severity=0.0 if routine else floor - (15.0 if denied else 0.0),
            max_severity=45.0 if routine else 100.0,
            needs_history=False,
        )

    def _routine_self_grant(self, event: Event, hits: list[str]) -> bool:
        """A ticketed, non-privileged grant an admin made to itself (routine access administration):
        reported at a low level, not paged. Only when self-granting is the *only* rule matched."""
        return (
            hits == ["self_grant"]
            and bool(event.ticket)
            and not event.privileged
            and is_admin(event.actor_role, event.actor_department, self.admin_roles, self.admin_departments,
                         event.actor_admin)
        )

    def _score_use(self, event: Event) -> Finding | None:
        pending = self.pending_.get(event.principal_id)
        if not pending or event.outcome != "allowed":
            return None
        bulk = event.records >= self.bulk_records or (event.action in EXPORT_ACTIONS and event.records > 0)
        if not bulk:
            return None
        for grant in pending:
            if not grant.suspicious or event.ts - grant.ts > self.window_s:
                continue
            if grant.resource_id and grant.resource_id != event.resource_id:
                continue
            minutes = (event.ts - grant.ts) / 60.0
            return Finding(
                detector=self.name,
                event=event,
                score=8.0,
                title=f"Bulk {event.action} right after a suspicious grant",
                reasons=[
                    f"{event.action} of {event.records:,} records from {event.resource_id}",
                    f"{grant.permission!r} was granted {minutes:.0f} minutes earlier ({grant.why})",
                ],
                evidence_event_ids=[grant.event_id, event.event_id],
                baseline={"window_s": self.window_s},
                resource_ids=[event.resource_id],
                min_severity=75.0,
                needs_history=False,
            )
        return None

    def learn_one(self, event: Event, profile: Profile, flagged: bool = False) -> None:
        is_access = event.kind == ACCESS
        if is_access and event.resource_id and event.outcome == "allowed" and not flagged:
            used = self.used_.get(event.principal_id)
            if used is None:
                used = self.used_[event.principal_id] = SeenSet(self.cap_resources)
            used.add(event.resource_hash, event.day)
        if self.pending_:
            pending = self.pending_.get(event.principal_id)
            if pending is not None:
                pending[:] = [g for g in pending if event.ts - g.ts <= self.window_s]
                if not pending:
                    del self.pending_[event.principal_id]
        if is_access or event.change != "grant" or event.outcome != "allowed":
            return
        hits = self._rules(event)
        used = self.used_.get(event.principal_id)
        known = bool(event.resource_id) and used is not None and event.resource_hash in used
        if self._routine_self_grant(event, hits):
            hits = []
        why = ", ".join(hits) if hits else ("no ticket, resource new to this principal" if not event.ticket else "")
        suspicious = bool(hits) or (not event.ticket and not known)
        pending = self.pending_.setdefault(event.principal_id, [])
        pending.append(_Pending(event, suspicious, why))
        del pending[: -self.max_pending]

    def forget(self, principal_id: str) -> None:
        self.pending_.pop(principal_id, None)
        self.used_.pop(principal_id, None)

    def n_principals(self) -> int:
        return len(self.used_)
