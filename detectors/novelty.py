"""First touch of a sensitive data category or restricted resource, for the principal and its peers.

Per principal: a bounded :class:`~detectors.compact.SeenSet` of the sensitive items (``category``
and ``resource`` for confidential or restricted resources) it has touched or been granted, with the
day of its latest touch. Per peer group (department/role), per department and organisation-wide:
:class:`~detectors.peers.PeerTouches`, how many distinct members touched each item within the last
``window_weeks`` weeks and how many members the group has (mergeable aggregates, apart from the
per-principal state).

Peer normality is a *share*: an item is normal for a peer group when at least ``min_peers`` members
and ``min_peer_share`` of them touched it within the window (for a department, ``min_dept_share``).
One peer's single touch does not make a special category normal for a team. A first touch that the
group shares (a team adopting a new table, a new joiner doing what colleagues do) is unremarkable.
Special-category data (health, minors, biometric, genetic) that the peer group and the department
do not use pages even without history. Other sensitive data that at least ``min_departments`` other
departments use, or ``min_shared_share`` of the organisation outside the team that uses it most, is
the organisation's shared data: an outsider's first touch of it is ordinary cross-team work
(reported, not paged), while a first touch of data only its own team uses stands out.

A table that people touch for the first time (after privwatch's warm-up; the pipeline that loaded it
does not count) stays *young* for ``young_days``: its first adopters have no peers doing it yet, but
a table that new is not someone else's data. An admin's ticketed grant of a resource counts as a
touch: the first access right after it is expected.
"""

from __future__ import annotations

import sys
from typing import Any, Final

from detectors.admins import is_admin
from detectors.base import Detector, Finding, Profile
from detectors.compact import SeenSet
from detectors.events import ACCESS, SPECIAL_CATEGORIES, Event
from detectors.peers import WEEK_DAYS, PeerTouches, View, recents, sizes, spreads

DAY_S: Final = 86_400.0
#: group key of the items any person has touched (a pipeline loading a new table does not count)
_HUMANS: Final = "org:humans"


def _items(event: Event) -> tuple[tuple[str, str, int], ...]:
    """(kind, name, hash) of the sensitive items an event touches (computed once per event)."""
    return event.sensitive_items


class Novelty(Detector):
    """Flags the first touch of a sensitive item that neither the principal nor its peers touch."""

    name = "novelty"
    per_principal = ("seen_", "member_")
    state_version = 2  # issue 31's layout (version 1: before it; rebuilt from history)

    def __init__(
        self,
        cap_per_principal: int = 24,
        cap_per_group: int = 256,
        min_peers: int = 2,
        min_peer_share: float = 0.2,
        min_dept_share: float = 0.1,
        min_departments: int = 3,
        min_shared_share: float = 0.05,
        window_weeks: int = 4,
        min_score: float = 2.5,
        org_warmup_days: float = 3.0,
        young_days: float = 2.0,
        special_min_severity: float = 70.0,
        admin_roles: tuple[str, ...] = (),
        admin_departments: tuple[str, ...] = (),
    ):
        self.cap_per_principal = cap_per_principal
        self.cap_per_group = cap_per_group
        self.min_peers = min_peers
        self.min_peer_share = min_peer_share
        self.min_dept_share = min_dept_share
        self.min_departments = min_departments
        self.min_shared_share = min_shared_share
        self.window_weeks = window_weeks
        self.min_score = min_score
        self.org_warmup_days = org_warmup_days
        self.young_days = young_days
        self.special_min_severity = special_min_severity
        self.admin_roles = admin_roles
        self.admin_departments = admin_departments
        self.seen_: dict[str, SeenSet] = {}
        #: group key ("peer:<dept/role>", "dept:<dept>", "org", "org:humans") -> touches, members
        self.groups_ = PeerTouches(window_weeks, cap_per_group)
        #: principal -> the group keys it was counted in (to undo on forget)
        self.member_: dict[str, tuple[str, ...]] = {}
        self.origin_: float | None = None
        #: item hash -> when a person first touched it, for items new since the warm-up
        self.young_: dict[int, float] = {}
        #: the other partitions' partials (:meth:`partial`), read with these: never persisted
        self.others_ = View()

    def partial(self) -> tuple[PeerTouches, dict[int, float]]:
        """The peer groups' touches and members, and the young items (live objects)."""
        return self.groups_, self.young_

    def view(self, others: list[Any]) -> None:
        self.others_ = View(tuple(others))

    def _groups(self) -> list[PeerTouches] | None:
        """Every partition's peer groups (this one's first), or None when there is no other."""
        others = self.others_.parts
        if not others:
            return None
        return [self.groups_, *[part[0] for part in others]]

    def _size(self, key: str) -> int:
        groups = self._groups()
        return self.groups_.size(key) if groups is None else sizes(groups, key)

    def _recent(self, key: str, h: int, day: int) -> int:
        groups = self._groups()
        return self.groups_.recent(key, h, day) if groups is None else recents(groups, key, h, day)

    def _known(self, key: str, h: int) -> bool:
        groups = self._groups()
        if groups is None:
            return self.groups_.known(key, h)
        return any([g.known(key, h) for g in groups])

    @staticmethod
    def _group_keys(event: Event) -> tuple[str, str, str]:
        return f"peer:{event.peer_group}", f"dept:{event.department or '-'}", "org"

    def _weight(self, kind: str, name: str, event: Event) -> float:
        if kind == "category":
            if name in SPECIAL_CATEGORIES:
                return 4.0
            return 1.0 if name.startswith("pii.") else 0.5
        return 3.0 if event.sensitivity == "restricted" else 1.5

    def score_one(self, event: Event, profile: Profile) -> Finding | None:
        if event.kind != ACCESS or event.outcome != "allowed" or self.origin_ is None:
            return None
        items = event.sensitive_items
        if not items:
            return None
        seen = self.seen_.get(event.principal_id)
        new = [item for item in items if seen is None or item[2] not in seen]
        if not new:
            return None
        peer_key, dept_key, org_key = self._group_keys(event)
        day = event.day
        peer_size = max(self._size(peer_key), 1)
        score, reasons, unpeered_special = 0.0, [], False
        for kind, name, h in new:
            peers = self._recent(peer_key, h, day)
            dept = self._recent(dept_key, h, day)
            org = self._recent(org_key, h, day)
            weight = self._weight(kind, name, event)
            special = kind == "category" and name in SPECIAL_CATEGORIES
            if self._normal(peer_key, peers, self.min_peer_share):
                weight *= 0.1  # the peer group does this too
            elif self._normal(dept_key, dept, self.min_dept_share):
                weight *= 0.3  # colleagues in the department do
            elif not self._known(_HUMANS, h) or self._young(h, event.ts):
                weight *= 0.3  # nobody touched it until lately: most likely a newly created table
            elif special:
                unpeered_special = True
            elif self._shared(h, day, dept, org):
                weight *= 0.3  # data the organisation shares across teams: ordinary cross-team work
            score += weight
            reasons.append(
                f"first touch of {kind} {name!r} by this principal; {peers} of ~{peer_size} peers "
                f"({event.peer_group}), {dept} others in the department and {org} in the "
                f"organisation touched it in the last {self.window_weeks} weeks"
            )
        if score < self.min_score:
            return None
        established = event.ts - self.origin_ >= self.org_warmup_days * DAY_S
        return Finding(
            detector=self.name,
            event=event,
            score=score,
            title=f"First access to {event.sensitivity or 'sensitive'} {new[0][1]}",
            reasons=reasons + [f"this principal has touched {len(seen or ())} sensitive items before"],
            evidence_event_ids=[event.event_id],
            baseline={"known_items": len(seen or ()), "peer_group_size": peer_size},
            min_severity=self.special_min_severity if unpeered_special and established else 0.0,
            needs_history=not (unpeered_special and established),
        )

    def learn_one(self, event: Event, profile: Profile, flagged: bool = False) -> None:
        if self.origin_ is None:
            self.origin_ = event.ts
        # A touch is a fact, not a baseline: even a flagged first touch is recorded, otherwise every
        # later access (and every peer's, when a whole team adopts a new table) stays "first" forever.
        if event.outcome != "allowed":
            return
        is_access = event.kind == ACCESS
        if not is_access and (event.change != "grant" or not (event.ticket and self._by_admin(event))):
            return  # only an admin's ticketed grant makes the first access expected
        items = event.sensitive_items
        seen = self.seen_.get(event.principal_id)
        if seen is None:
            seen = self.seen_[event.principal_id] = SeenSet(self.cap_per_principal)
            keys = self.member_[event.principal_id] = tuple(map(sys.intern, self._group_keys(event)))
            for key in keys:
                self.groups_.join(key)
        if not items:
            return
        day = event.day
        for _, _, h in items:
            previous = seen.swap_day(h, day)
            if not is_access or (previous >= 0 and previous // WEEK_DAYS == day // WEEK_DAYS):
                continue  # the group counts each member once a week at most
            if event.principal_kind == "human":
                if not self._known(_HUMANS, h):  # the first person in any partition
                    self._note_young(h, event.ts)
                self.groups_.touch(_HUMANS, h, day, previous)
            for key in self._group_keys(event):
                self.groups_.touch(key, h, day, previous)

    def _shared(self, h: int, day: int, dept: int, org: int) -> bool:
        """Whether the organisation shares an item across teams: ``min_departments`` other departments
        touched it lately, or ``min_shared_share`` of the organisation outside the team that uses it
        most (a share holds when each engine sees only some of the organisation's principals)."""
        groups = self._groups()
        teams, main = self.groups_.spread("dept:", h, day) if groups is None else spreads(groups, "dept:", h, day)
        outside = (org - main) / max(self._size("org"), 1)
        return teams - (dept > 0) >= self.min_departments or outside >= self.min_shared_share

    def _normal(self, key: str, members: int, min_share: float) -> bool:
        """Whether enough of a group's members (a share, and ``min_peers`` at least) touched an item."""
        return members >= self.min_peers and members >= min_share * self._size(key)

    def _young(self, h: int, ts: float) -> bool:
        """Whether the first person to touch the item did so lately (after the warm-up)."""
        first = self.young_.get(h)
        others = self.others_.parts
        if others:  # the first person in any partition
            firsts = [t for t in [part[1].get(h) for part in others] if t is not None]
            if first is not None:
                firsts.append(first)
            first = min(firsts, default=None)
        return first is not None and ts - first < self.young_days * DAY_S

    def _note_young(self, h: int, ts: float) -> None:
        """Remember an item a person touches for the first time after the warm-up (before it, every
        item is new to privwatch, not to the organisation)."""
        assert self.origin_ is not None
        if ts - self.origin_ < self.org_warmup_days * DAY_S:
            return
        if len(self.young_) >= self.cap_per_group:  # in place: the dictionary is part of the partial
            for k in [k for k, t in self.young_.items() if ts - t >= self.young_days * DAY_S]:
                del self.young_[k]
        if len(self.young_) < self.cap_per_group:
            self.young_[h] = ts

    def _by_admin(self, event: Event) -> bool:
        return is_admin(event.actor_role, event.actor_department, self.admin_roles, self.admin_departments,
                        event.actor_admin)

    def forget(self, principal_id: str) -> None:
        """Drop the principal and take it out of its groups' member and touch counts."""
        seen = self.seen_.pop(principal_id, None)
        groups = self.member_.pop(principal_id, None)
        if seen is None or groups is None:
            return
        for key in groups:
            self.groups_.leave(key)
            for h, day in seen.items():
                self.groups_.untouch(key, h, day)

    def n_principals(self) -> int:
        return len(self.seen_)
