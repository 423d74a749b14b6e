"""One exception root for privwatch, and the exit code each kind of failure gives the command.

Every error an operator can meet at start-up is one of these: the CLI prints it as one line,
``privwatch: error: ...``, and exits with its code (documented in ``docs/operations.md``):

====  ==================================================================
code  meaning
====  ==================================================================
0     done (or stopped cleanly by SIGTERM/SIGINT)
1     an unexpected failure (a bug: the traceback is logged)
2     usage or configuration: a bad flag, setting, config file or catalog
3     an input file is missing, unreadable or not what it should be
4     Kafka cannot be reached at the bootstrap servers
5     topics: missing, misconfigured, or the input topics are not co-partitioned
6     a port to listen on is busy or not allowed
7     stopped while outputs (alerts, dead letters) were not acknowledged: nothing was committed past them
130   interrupted (Ctrl-C) before a clean stop
====  ==================================================================
"""

from typing import Any


class PrivwatchError(Exception):
    """Root of every error privwatch raises on purpose; ``exit_code`` is what the command returns."""

    exit_code = 1


class ConfigError(PrivwatchError):
    """Settings are missing, unknown or invalid; raised at start-up."""

    exit_code = 2


class InputError(PrivwatchError):
    """An input file is missing, unreadable, or its contents cannot be used."""

    exit_code = 3


class KafkaUnavailable(PrivwatchError):
    """No broker answered at the bootstrap servers."""

    exit_code = 4


class TopologyError(PrivwatchError):
    """The input topics are not co-partitioned, or a topic is missing or lacks a configuration it needs."""

    exit_code = 5


class PortError(PrivwatchError):
    """A port the process must listen on is in use or not allowed."""

    exit_code = 6


class OutputsUnsent(PrivwatchError):
    """Alerts or dead letters the broker has not acknowledged: the offsets that produced them are not
    committed. The loop stops consuming and retries; a stop in that state exits with this code."""

    exit_code = 7


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


def first_error(exc: Any, whole: str) -> tuple[str, str]:
    """(where, message) of a pydantic ValidationError's first error; ``whole`` names the document
    when the error is about all of it."""
    first = exc.errors(include_url=False, include_input=False)[0]
    return ".".join(map(str, first["loc"])) or whole, first["msg"]
