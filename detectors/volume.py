"""Bulk volume: records moved by one principal, per action class, against its own and its peers'
baseline (log scale, exponentially weighted)."""

from __future__ import annotations

import math
from typing import Any, Final

from detectors.base import Detector, Finding, Profile
from detectors.compact import EW, SeenSet, pooled_get
from detectors.events import Event
from detectors.peers import View

EXPORT_ACTIONS: Final = frozenset({"export", "download", "share"})
#: action class -> index in a principal's baselines (0 is all actions together)
CLASSES: Final = {"export": 1, "query": 2, "read": 3}


def action_class(action: str) -> str:
    """Exports (whole result sets leave), queries (many rows by nature) and the rest (single records
    or objects: reads, writes, downloads, shares).

    >>> action_class("export"), action_class("query"), action_class("download")
    ('export', 'query', 'read')
    """
    if action == "export" or action == "query":
        return action
    return "read"


class Volume(Detector):
    """Flags one access that moves far more records than this principal (and its peers) usually do.

    Own history first: an export of sensitive data ``page_typical_ratio`` times the principal's typical
    export (with a z-score of ``own_z`` on its own spread), or ``first_export_ratio`` times it from a
    restricted table it never exported (``first_export_z``), is bulk whatever its peers and the
    table's other users move. On the eight tuning worlds, exports of never-exported restricted tables
    at 30x the typical were 8 bulk exports and 2 benign ones; of tables exported before, at 60x and
    z 3, 6 bulk exports and 1 benign one. The tables a principal exported are a bounded seen-set
    (``cap_resources``). A principal with only a few exports (``min_young_history`` to
    ``min_class_history``), whose peers may be too few to judge by, is judged by its own few:
    ``young_typical_ratio`` times their typical size is bulk.

    Otherwise the score is the smaller of the principal's z-score of ``log1p(records)`` and the peer group's plus
    ``peer_slack`` (both must agree that it is big), gated by ``min_records`` and by a ratio to the top of the
    usual range (``min_ratio``), so that a usual export that is merely large stays quiet. A principal
    with little history in the action class is judged against its peer group's, with a higher bar
    (``young_extra_z``). An export (not a query) both ``page_typical_ratio`` times the typical size and
    ``huge_ratio`` times the usual top (of the principal and of the resource) is *huge*: it needs no
    z-score, because a wide spread of sizes keeps z modest on the log scale even for an export five
    hundred times the typical one, and it pages at least at ``huge_min_severity``. On fifteen simulated
    seeds, huge exports 14-21x the usual top were benign (three of them) and those 33-37x were bulk
    exports (two, missed without this rule). The resource's
    own baseline (sizes moved from it by everyone, one small object per resource and action class)
    must agree too, within ``resource_slack``: an export several times this principal's usual size
    from a table whose exports are normally that big is not bulk. Record counts are heavy-tailed
    (an analyst's exports vary over two orders of magnitude), so a finding pages only at
    ``page_ratio`` times the top of the usual range or ``page_typical_ratio`` times the typical size
    (the geometric mean); below that it is reported at low severity.

    >>> from detectors.events import Event
    >>> from detectors.base import Profile
    >>> v, p = Volume(), Profile(first_ts=0.0, last_ts=0.0)
    >>> for i in range(50):
    ...     e = Event(kind="access", event_id=f"e{i}", ts=i, principal_id="u", action="export", records=10)
    ...     v.learn_one(e, p)
    >>> big = Event(kind="access", event_id="x", ts=60, principal_id="u", action="export", records=50_000)
    >>> v.score_one(big, p).score > 5
    True
    """

    name = "volume"
    per_principal = ("own_", "exported_")
    state_version = 2  # issue 31's layout (version 1: before it; rebuilt from history)
    event_kinds = frozenset({"access"})
    shift_sensitive = True

    def __init__(
        self,
        alpha: float = 0.03,
        min_records: int = 1000,
        min_z: float = 3.5,
        min_ratio: float = 4.0,
        min_history: int = 20,
        min_class_history: int = 8,
        young_extra_z: float = 1.5,
        huge_ratio: float = 25.0,
        huge_min_severity: float = 65.0,
        std_floor: float = 0.5,
        peer_slack: float = 0.5,
        non_export_extra_z: float = 1.5,
        resource_slack: float = 0.5,
        page_ratio: float = 12.0,
        page_typical_ratio: float = 60.0,
        first_export_ratio: float = 30.0,
        first_export_z: float = 2.5,
        own_z: float = 3.0,
        cap_resources: int = 16,
        now_alpha: float = 0.3,
        min_young_history: int = 3,
        young_typical_ratio: float = 100.0,
    ):
        self.alpha = alpha
        self.min_records = min_records
        self.min_z = min_z
        self.min_ratio = min_ratio
        self.min_history = min_history
        self.min_class_history = min_class_history
        self.huge_ratio = huge_ratio
        self.huge_min_severity = huge_min_severity
        self.young_extra_z = young_extra_z
        self.std_floor = std_floor
        self.peer_slack = peer_slack
        self.non_export_extra_z = non_export_extra_z
        self.resource_slack = resource_slack
        self.page_ratio = page_ratio
        self.page_typical_ratio = page_typical_ratio
        self.first_export_ratio = first_export_ratio
        self.first_export_z = first_export_z
        self.own_z = own_z
        self.cap_resources = cap_resources
        self.now_alpha = now_alpha
        self.min_young_history = min_young_history
        self.young_typical_ratio = young_typical_ratio
        #: principal -> baselines: all actions, then one per action class (see CLASSES)
        self.own_: dict[str, tuple[EW, ...]] = {}  # any length: compiled, a fixed one is unpacked per lookup
        self.peers_: dict[tuple[str, str], EW] = {}
        #: (resource, action class) -> sizes moved from it by everyone: one small object per resource
        self.resources_: dict[tuple[str, str], EW] = {}
        #: (peer group, action class) -> sizes the group moves *right now* (fast forgetting, every event)
        self.peers_now_: dict[tuple[str, str], EW] = {}
        #: principal -> the resources it has exported (hashes)
        self.exported_: dict[str, SeenSet] = {}
        #: the other partitions' partials (:meth:`partial`), read with these: never persisted
        self.others_ = View()

    def partial(self) -> tuple[dict[tuple[str, str], EW], ...]:
        """The peer groups', the resources' and the peer groups' current sizes (live objects)."""
        return self.peers_, self.resources_, self.peers_now_

    def view(self, others: list[Any]) -> None:
        self.others_ = View(tuple(others))

    def _pooled(self, table: dict[tuple[str, str], EW], index: int, key: tuple[str, str]) -> EW | None:
        """``table[key]`` pooled with the other partitions' (``index`` in their partials): :meth:`EW.pooled`."""
        return pooled_get(table, self.others_.parts, key, index)

    def _baseline(self, event: Event, cls: str) -> tuple[EW | None, bool]:
        """(baseline, young): the principal's own history in the action class when it has at least
        ``min_class_history`` events there. A principal's history across *all* actions says
        nothing about export sizes (single-record reads dominate it), so a principal young in the
        class is judged against its peers' class baseline instead, with a higher bar."""
        own = self.own_.get(event.principal_id)
        if own is None or own[0].n < self.min_history:
            return None, True
        by_class = own[CLASSES[cls]]
        if by_class.n >= self.min_class_history:
            return by_class, False
        return None, True

    def score_one(self, event: Event, profile: Profile) -> Finding | None:
        if event.records < self.min_records or event.outcome != "allowed":
            return None
        cls = action_class(event.action)
        own, young = self._baseline(event, cls)
        if young and cls == "export" and event.sensitivity_rank >= 2:
            found = self._young_bulk(event, profile)
            if found is not None:
                return found
        peers = self._pooled(self.peers_, 0, (profile.peer_group, cls))
        has_peers = peers is not None and peers.n >= self.min_history
        if own is None:
            if peers is None or not (young and has_peers and self.own_.get(event.principal_id)):
                return None
            own = peers  # judged against the peer group, with a higher bar below
        x = math.log1p(event.records)
        z_own = own.z(x, self.std_floor) - (self.young_extra_z if young else 0.0)
        usual = math.expm1(own.upper())
        typical = math.expm1(own.mean)
        if not young and cls == "export" and event.sensitivity_rank >= 2:
            why = self._own_bulk(event, z_own, typical)
            if why:
                return self._bulk_by_own_history(event, profile, z_own, typical, usual, why)
        # an export so far beyond both the typical size and the usual top that a wide spread of sizes
        # (which keeps z modest on the log scale) cannot make it ordinary (queries have heavier tails)
        huge = cls == "export" and event.records >= max(self.page_typical_ratio * max(typical, 1.0),
                                                        self.huge_ratio * usual)
        if (z_own < self.min_z and not huge) or event.records < self.min_ratio * usual:
            return None
        z_peer = peers.z(x, self.std_floor) if peers is not None and has_peers else z_own
        peer_usual = math.expm1(peers.upper()) if peers is not None and has_peers else usual
        # peers need only half agree: a principal's own history is the sharper baseline
        score = min(z_own, z_peer + self.peer_slack)
        # nor is it bulk for the resource: a big table whose exports are usually that big
        res = self._pooled(self.resources_, 1, (event.resource_id, cls))
        has_res = res is not None and res.n >= self.min_history
        z_res = res.z(x, self.std_floor) if res is not None and has_res else score
        res_usual = math.expm1(res.upper()) if res is not None and has_res else peer_usual
        score = min(score, z_res + self.resource_slack)
        huge = huge and event.records >= self.huge_ratio * res_usual
        # queries return many rows by nature (heavy-tailed sizes): a higher bar than exports
        if score < self.min_z + (0.0 if cls == "export" else self.non_export_extra_z) and not huge:
            return None
        ratio = event.records / max(usual, 1.0)
        now = self._pooled(self.peers_now_, 2, (profile.peer_group, cls))
        peers_now = math.expm1(now.mean) if now is not None else 0.0
        extreme = event.records >= self.page_typical_ratio * max(typical, 1.0)
        pages = ratio >= self.page_ratio or extreme
        return Finding(
            detector=self.name,
            event=event,
            score=score,
            title=f"Bulk {event.action} of {event.sensitivity or 'unclassified'} data",
            reasons=[
                f"{event.action} of {event.records:,} records from {event.resource_id}; this principal's "
                f"usual {cls} is up to {usual:,.0f} records "
                f"({ratio:,.0f}x, z={z_own:.1f})",
                f"peers ({profile.peer_group}) usually move up to {peer_usual:,.0f} records (z={z_peer:.1f})",
                f"{cls}s of {event.resource_id} by anyone usually move up to {res_usual:,.0f} records "
                f"(z={z_res:.1f})",
            ],
            evidence_event_ids=[event.event_id],
            baseline={
                "observed_records": event.records,
                "usual_records": round(usual),
                "peer_usual_records": round(peer_usual),
                "resource_usual_records": round(res_usual),
            },
            # a few times the usual top is the heavy tail of ordinary work: reported, paged only
            # an order of magnitude above it
            max_severity=100.0 if pages else 45.0,
            min_severity=self.huge_min_severity if huge else 0.0,
            # a busy week makes exports a few times bigger, not a hundred times; unless the peers
            # are moving such sizes right now too
            beyond_shift=extreme and event.records >= self.page_typical_ratio * max(peers_now, 1.0),
        )

    def _own_bulk(self, event: Event, z: float, typical: float) -> str:
        """Why the principal's own export history alone makes this export bulk ("" when it does not).

        Own history first, resource and peer norms second: ``first_export_ratio`` times the
        principal's typical export, of a restricted table it never exported, or ``page_typical_ratio``
        times it of any table (with a z-score of ``first_export_z`` and ``min_z`` on its own spread).
        What a table's heavy users export is not normal for someone who never did it."""
        ratio = event.records / max(typical, 1.0)
        exported = self.exported_.get(event.principal_id)
        new = exported is None or event.resource_hash not in exported
        if new and event.sensitivity == "restricted" and ratio >= self.first_export_ratio and z >= self.first_export_z:
            return f"{ratio:,.0f}x this principal's typical export, of a restricted table it never exported"
        if ratio >= self.page_typical_ratio and z >= self.own_z:
            return f"{ratio:,.0f}x this principal's typical export"
        return ""

    def _young_bulk(self, event: Event, profile: Profile) -> Finding | None:
        """Own history first, even a short one: ``young_typical_ratio`` times the typical of the
        principal's first ``min_young_history`` (or more) exports is beyond any spread a handful of
        exports could hide, whatever its peers (maybe too few to judge by) export."""
        own = self.own_.get(event.principal_id)
        if own is None or own[0].n < self.min_history:
            return None
        exports = own[CLASSES["export"]]
        typical = math.expm1(exports.mean)
        ratio = event.records / max(typical, 1.0)
        if exports.n < self.min_young_history or ratio < self.young_typical_ratio:
            return None
        z = exports.z(math.log1p(event.records), self.std_floor)
        why = f"{ratio:,.0f}x this principal's typical export (over its first {exports.n} exports)"
        return self._bulk_by_own_history(event, profile, z, typical, math.expm1(exports.upper()), why)

    def _bulk_by_own_history(self, event: Event, profile: Profile, z: float, typical: float, usual: float,
                             why: str) -> Finding:
        res = self._pooled(self.resources_, 1, (event.resource_id, "export"))
        res_usual = math.expm1(res.upper()) if res is not None and res.n >= self.min_history else 0.0
        now = self._pooled(self.peers_now_, 2, (profile.peer_group, "export"))
        peers_now = math.expm1(now.mean) if now is not None else 0.0
        return Finding(
            detector=self.name,
            event=event,
            score=z,
            title=f"Bulk export of {event.sensitivity or 'unclassified'} data",
            reasons=[
                f"export of {event.records:,} records from {event.resource_id}: {why} "
                f"(typical {typical:,.0f}, usual up to {usual:,.0f} records, z={z:.1f})",
                f"exports of {event.resource_id} by anyone usually move up to {res_usual:,.0f} records: "
                "what is normal for a table's heavy users is not normal for this principal" if res_usual
                else f"too few exports of {event.resource_id} by anyone to say what is usual for the table",
            ],
            evidence_event_ids=[event.event_id],
            baseline={"observed_records": event.records, "typical_records": round(typical),
                      "usual_records": round(usual), "resource_usual_records": round(res_usual)},
            min_severity=self.huge_min_severity,
            # a busy week makes exports a few times bigger, not thirty times; unless the peers are
            # moving such sizes right now too
            beyond_shift=event.records >= self.first_export_ratio * max(peers_now, 1.0),
        )

    def learn_one(self, event: Event, profile: Profile, flagged: bool = False) -> None:
        if event.outcome != "allowed":
            return
        cls = action_class(event.action)
        if cls == "export" and event.resource_id:  # a fact, not a baseline: learned even when flagged
            exported = self.exported_.get(event.principal_id)
            if exported is None:
                exported = self.exported_[event.principal_id] = SeenSet(self.cap_resources)
            exported.add(event.resource_hash, event.day)
        x = math.log1p(event.records)
        now_key = (profile.peer_group, cls)
        now = self.peers_now_.get(now_key)
        if now is None:
            now = self.peers_now_[now_key] = EW()
        now.update(x, self.now_alpha)  # what the group does now, anomalies included
        if flagged:
            return
        own = self.own_.get(event.principal_id)
        if own is None:
            own = self.own_[event.principal_id] = (EW(), EW(), EW(), EW())
        own[0].update(x, self.alpha)
        own[CLASSES[cls]].update(x, self.alpha)
        peers = self.peers_.get(now_key)  # the same (peer group, action class) key
        if peers is None:
            peers = self.peers_[now_key] = EW()
        peers.update(x, self.alpha / 4)
        if event.resource_id:
            rkey = (event.resource_id, cls)
            res = self.resources_.get(rkey)
            if res is None:
                res = self.resources_[rkey] = EW()
            res.update(x, self.alpha / 4)

    def forget(self, principal_id: str) -> None:
        self.own_.pop(principal_id, None)
        self.exported_.pop(principal_id, None)

    def n_principals(self) -> int:
        return len(self.own_)
