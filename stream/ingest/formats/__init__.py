"""One module per source format, each a pure function ``map_record(record) -> list of contract event
dicts`` that raises :class:`~stream.ingest.common.Skip` or :class:`~stream.ingest.common.Reject`.
``docs/ingest/<format>.md`` has each format's table of what becomes what."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from stream.ingest.formats import cloudtrail, entra, gcp_audit, k8s_audit, ocsf, okta

Mapper = Callable[[dict[str, Any]], list[dict[str, Any]]]

#: format name (as ``--format`` spells it) -> its mapping function
FORMATS: dict[str, Mapper] = {
    "cloudtrail": cloudtrail.map_record,
    "gcp-audit": gcp_audit.map_record,
    "entra": entra.map_record,
    "okta": okta.map_record,
    "k8s-audit": k8s_audit.map_record,
    "ocsf": ocsf.map_record,
}
