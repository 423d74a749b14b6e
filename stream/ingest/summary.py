"""What an ingest run did: every record is mapped, skipped or rejected, so
``records = mapped + skipped + rejected`` (skips and rejects counted by reason), and ``events`` by type."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Summary:
    """Counts of one run (file mode) or since start (stream mode).

    >>> s = Summary()
    >>> s.mapped_one(["access", "access"]); s.skipped_one("not_mapped"); s.rejected_one("malformed_json")
    >>> d = s.as_dict()
    >>> d["records"] == d["mapped"] + sum(d["skipped"].values()) + sum(d["rejected"].values()), d["events"]
    (True, {'access': 2})
    """

    records: int = 0
    mapped: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)

    def mapped_one(self, types: list[str]) -> None:
        self.records += 1
        self.mapped += 1
        self.events.update(types)

    def skipped_one(self, reason: str) -> None:
        self.records += 1
        self.skipped[reason] += 1

    def rejected_one(self, reason: str) -> None:
        self.records += 1
        self.rejected[reason] += 1

    def as_dict(self) -> dict[str, Any]:
        return {"records": self.records, "mapped": self.mapped, "skipped": dict(sorted(self.skipped.items())),
                "rejected": dict(sorted(self.rejected.items())), "events": dict(sorted(self.events.items()))}

    def line(self) -> str:
        """One line for a person (stderr)."""
        return (f"{self.records:,} records: {self.mapped:,} mapped, {sum(self.skipped.values()):,} skipped, "
                f"{sum(self.rejected.values()):,} rejected; events "
                + (", ".join(f"{k}={v:,}" for k, v in sorted(self.events.items())) or "none"))
