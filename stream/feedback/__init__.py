"""Analyst feedback: signed verdicts read from the feedback topic, checked, and applied to the detectors'
policy (:mod:`detectors.feedback`); the signing and key handling the CLI and the triage app share."""

#: The feedback topic's configuration (``privwatch run --create-topics``; docs/operations.md). Keyed by
#: verdict id and compacted, so a re-sent verdict is kept once; deleted after 31 days, longer than any
#: verdict lasts (30 days and the signing skew), so what is in force survives retention while a flood of
#: junk does not stay forever; stamped by the broker on append, which a verdict's signed time is checked
#: against (a writer cannot choose it).
TOPIC_CONFIG = {
    "cleanup.policy": "compact,delete",
    "retention.ms": str(31 * 86_400_000),
    "message.timestamp.type": "LogAppendTime",
}
