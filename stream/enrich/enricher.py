"""Applies the directory and the catalog to a contract document, in place.

In ``privwatch ingest`` (``resolve=True``) every principal's id becomes its directory id, whatever
alias the source used, before the event is keyed. In ``privwatch run`` ids are left as they are (they
are the Kafka keys the producer partitioned by): only missing fields are filled. Either way a field
the document has is never overwritten, and one that neither the document nor the directory has stays
absent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from stream.enrich.catalog import Catalog
from stream.enrich.directory import Directory, admin_of

#: what the enricher can fill on a principal from its directory record
_FIELDS = ("kind", "department", "role")
#: gap -> what it means (the metric ``privwatch_identity_gaps_total{gap}``)
GAPS = {
    "not_in_directory": "a principal the directory does not know (its fields stay as the source gave them)",
    "actor_admin_unknown": "a grant whose actor's admin status is unknown (no flag, no role or group known, "
                           "or no admin roles configured): no non-admin finding is possible for it",
}


class Enricher:
    """``enricher(doc)`` fills ``doc`` from ``directory()`` and ``catalog()`` (callables, so that a
    reloaded version is used as soon as it is loaded)."""

    def __init__(self, directory: Callable[[], Directory | None] = lambda: None,
                 catalog: Callable[[], Catalog | None] = lambda: None, admin_roles: Sequence[str] = (),
                 admin_groups: Sequence[str] = (), resolve: bool = False,
                 on_gap: Callable[[str], None] | None = None) -> None:
        self.directory, self.catalog = directory, catalog
        self.admin_roles, self.admin_groups = tuple(admin_roles), tuple(admin_groups)
        self.resolve = resolve
        self.on_gap = on_gap or (lambda gap: None)

    def __call__(self, doc: dict[str, Any]) -> None:
        directory = self.directory()
        if directory is not None:
            for role in ("principal", "actor", "target"):
                who = doc.get(role)
                if who is not None:
                    self.principal(who, directory)
        if doc.get("type") == "permission":
            actor = doc.get("actor") or {}
            if actor.get("admin") is None and not self._admin_knowable(actor):
                self.on_gap("actor_admin_unknown")
        catalog = self.catalog()
        resource = doc.get("resource")
        if catalog is not None and resource and (resource.get("sensitivity") is None or not resource.get("categories")):
            sensitivity, categories = catalog.lookup(resource["id"])
            if resource.get("sensitivity") is None and sensitivity is not None:
                resource["sensitivity"] = sensitivity
            if not resource.get("categories") and categories:
                resource["categories"] = list(categories)

    def _admin_knowable(self, actor: dict[str, Any]) -> bool:
        """Whether the detectors can tell an admin from this actor's role or department (when admin
        roles are configured, which the enricher knows as ``admin_roles``)."""
        return bool(self.admin_roles) and (actor.get("role") is not None or actor.get("department") is not None)

    def principal(self, who: dict[str, Any], directory: Directory) -> None:
        """Fill (and with ``resolve``, re-id) one principal dict from its directory record."""
        pid = directory.resolve(who.get("aliases") or [who.get("id")])
        if pid is None:
            self.on_gap("not_in_directory")
            return
        person = directory.people[pid]
        if self.resolve:
            who["id"] = pid
        for name in _FIELDS:
            if who.get(name) is None and getattr(person, name) is not None:
                who[name] = getattr(person, name)
        if who.get("admin") is None:
            admin = admin_of(person, self.admin_roles, self.admin_groups)
            if admin is not None:
                who["admin"] = admin
