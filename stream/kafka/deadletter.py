"""Dead-letter records: the original bytes, verbatim, with the reason and the source position in
headers (the Kafka Connect convention), so nothing is dropped silently and a fixed record can be
re-produced as is."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DeadLetter:
    value: bytes | None
    key: bytes | None
    reason: str
    detail: str
    topic: str
    partition: int
    offset: int

    def headers(self) -> list[tuple[str, bytes]]:
        """Kafka record headers describing why and where from.

        >>> DeadLetter(b"{", None, "malformed_json", "EOF", "in", 2, 7).headers()[0]
        ('privwatch.reason', b'malformed_json')
        """
        return [
            ("privwatch.reason", self.reason.encode()),
            ("privwatch.detail", self.detail.encode("utf-8", "replace")[:1024]),
            ("privwatch.source.topic", self.topic.encode()),
            ("privwatch.source.partition", str(self.partition).encode()),
            ("privwatch.source.offset", str(self.offset).encode()),
        ]
