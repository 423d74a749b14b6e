"""One exception root for privwatch."""


class PrivwatchError(Exception):
    """Root of every error privwatch raises on purpose."""


class ConfigError(PrivwatchError):
    """Settings are missing, unknown or invalid; raised at start-up."""


class BadRecord(PrivwatchError):
    """An input record that cannot be decoded or validated; it goes to the dead-letter topic.

    ``reason`` is a short, low-cardinality code (used as a metric label); ``detail`` is the
    human-readable explanation written into the dead-letter record.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class SnapshotError(PrivwatchError):
    """A state snapshot is corrupt, foreign or unauthenticated and was refused."""


class TopologyError(PrivwatchError):
    """The input topics are not co-partitioned, or a topic is missing."""
