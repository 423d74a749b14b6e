"""One raw record through a format's mapping, the directory and catalog, the privileged-permission
patterns and the contract: the events it becomes (encoded, valid), or why it was skipped or rejected."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from stream.contract.decode import dumps, validate
from stream.enrich.enricher import Enricher
from stream.errors import BadRecord
from stream.ingest.common import Reject, Skip
from stream.ingest.formats import FORMATS

#: AWS-managed, GCP basic and predefined, Entra, Okta and Kubernetes permissions that let their holder
#: grant others or read everything (the default of the ``privileged_permissions`` setting)
DEFAULT_PRIVILEGED = (
    "arn:aws:iam::aws:policy/AdministratorAccess", "arn:aws:iam::aws:policy/IAMFullAccess",
    "arn:aws:iam::aws:policy/PowerUserAccess", "roles/owner", "roles/editor", "roles/iam.securityAdmin",
    "roles/resourcemanager.organizationAdmin", "role:Global Administrator", "role:Privileged Role Administrator",
    "role:Application Administrator", "azure_role:Owner", "azure_role:User Access Administrator",
    "okta:Super administrator", "okta:Organization administrator", "ClusterRole/cluster-admin",
)


@dataclass
class Outcome:
    """``events``: (type, key, encoded event) when mapped; else ``skip`` or ``reject`` says why."""

    events: list[tuple[str, bytes, bytes]] = field(default_factory=list)
    skip: str | None = None
    reject: Reject | None = None


class Pipeline:
    """Maps records of one format. Kafka keys: ``principal.id``, for a grant ``target.id``."""

    def __init__(self, fmt: str, enricher: Enricher | None = None,
                 privileged: Sequence[str] = DEFAULT_PRIVILEGED) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
        self.fmt = fmt
        self.mapper = FORMATS[fmt]
        self.enricher = enricher or Enricher(resolve=True)
        self.privileged = re.compile("|".join(fnmatch.translate(p) for p in privileged)) if privileged else None

    def run(self, record: Any) -> Outcome:
        if isinstance(record, Reject):
            return Outcome(reject=record)
        if not isinstance(record, dict):
            return Outcome(reject=Reject("not_an_object", f"a JSON {type(record).__name__}, not an object"))
        try:
            docs = self.mapper(record)
        except Skip as skip:
            return Outcome(skip=skip.reason)
        except Reject as reject:
            return Outcome(reject=reject)
        except (TypeError, ValueError, AttributeError, KeyError) as exc:  # a shape no mapping foresaw
            return Outcome(reject=Reject("unexpected_shape", f"{type(exc).__name__}: {exc}"[:200]))
        out = Outcome()
        for doc in docs:
            self.finish(doc)
            value = dumps(doc)
            try:
                validate(value)
            except BadRecord as bad:
                return Outcome(reject=Reject("contract", f"{bad.reason}: {bad.detail}"[:300]))
            who = doc["target"] if doc["type"] == "permission" else doc["principal"]
            out.events.append((doc["type"], str(who["id"]).encode(), value))
        return out

    def finish(self, doc: dict[str, Any]) -> None:
        """Directory and catalog, then aliases dropped and ``privileged`` set from the patterns."""
        self.enricher(doc)
        for role in ("principal", "actor", "target"):
            who = doc.get(role)
            if who is not None:
                who.pop("aliases", None)
        if doc["type"] == "permission" and self.privileged is not None:
            doc["privileged"] = bool(self.privileged.match(doc["permission"]))
