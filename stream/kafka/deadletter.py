"""Dead-letter records: the original bytes, verbatim, with the reason and the source position in
headers (the Kafka Connect convention), so nothing is dropped silently and a fixed record can be
re-produced as is.

A record larger than the dead-letter topic takes (its ``max.message.bytes``, learnt at start-up) is
cut to fit: its first bytes are kept, with ``privwatch.truncated`` and ``privwatch.original.size``
headers saying so (:meth:`DeadLetter.fit`). Dead letters hold whatever the producers sent, personal
data included: the topic gets a retention at creation (``dead_letter_retention_ms``, 7 days by default).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from stream.kafka.outputs import Output

#: room left for the record batch's and the record's own framing, the key and the headers' names
OVERHEAD_BYTES = 512
#: Kafka's default message.max.bytes (1 MiB and 12 bytes), the limit when the topic's is not known
DEFAULT_LIMIT_BYTES = 1_048_588


@dataclass(frozen=True, slots=True)
class DeadLetter:
    value: bytes | None
    key: bytes | None
    reason: str
    detail: str
    topic: str
    partition: int
    offset: int
    #: the size of the original value when this one was cut shorter, else None
    original_size: int | None = None

    def headers(self) -> list[tuple[str, bytes]]:
        """Kafka record headers describing why and where from.

        >>> DeadLetter(b"{", None, "malformed_json", "EOF", "in", 2, 7).headers()[0]
        ('privwatch.reason', b'malformed_json')
        """
        headers = [
            ("privwatch.reason", self.reason.encode()),
            ("privwatch.detail", self.detail.encode("utf-8", "replace")[:1024]),
            ("privwatch.source.topic", self.topic.encode()),
            ("privwatch.source.partition", str(self.partition).encode()),
            ("privwatch.source.offset", str(self.offset).encode()),
        ]
        if self.original_size is not None:
            headers += [("privwatch.truncated", b"true"), ("privwatch.original.size", str(self.original_size).encode())]
        return headers

    def size(self) -> int:
        """Bytes of the record as produced (value, key and headers), without the batch framing."""
        return (len(self.value or b"") + len(self.key or b"")
                + sum(len(name) + len(value) for name, value in self.headers()))

    def fit(self, limit: int) -> DeadLetter:
        """This dead letter, or a copy with its value (and key) cut so that the record fits ``limit`` bytes.

        >>> big = DeadLetter(b"x" * 5000, b"k", "too_large", "", "in", 0, 1)
        >>> cut = big.fit(2000)
        >>> len(cut.value) < 2000, dict(cut.headers())["privwatch.original.size"]
        (True, b'5000')
        >>> big.fit(10_000) is big
        True
        """
        if self.size() + OVERHEAD_BYTES <= limit:
            return self
        original = self.original_size if self.original_size is not None else len(self.value or b"")
        cut = dataclasses.replace(self, value=b"", key=(self.key or b"")[:256] or None, original_size=original)
        room = max(0, limit - OVERHEAD_BYTES - cut.size())
        return dataclasses.replace(cut, value=(self.value or b"")[:room])


def dead_letter_output(topic: str, letter: DeadLetter) -> Output:
    """The output record of ``letter``, which cuts itself to half its size when the broker finds it too
    large (the topic's limit may have changed since start-up)."""

    def shrink(output: Output) -> Output | None:
        size = len(output.value or b"") + len(output.key or b"")
        return dead_letter_output(topic, letter.fit(size // 2)) if size > 64 else None

    return Output(topic, letter.key, letter.value, letter.headers(), shrink)
