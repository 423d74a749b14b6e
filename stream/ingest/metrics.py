"""``privwatch ingest``'s metrics (stream mode), on its own registry. Labels are formats, event types and
reason codes: never an identifier."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Info

from stream import __version__

OUTCOMES = ("mapped", "skipped", "rejected")
EVENT_TYPES = ("access", "permission", "authentication")


class IngestMetrics:
    """All of ingest's metric objects, registered on ``registry``."""

    def __init__(self, registry: CollectorRegistry, fmt: str) -> None:
        r = registry
        self.registry = registry
        self.records = Counter("privwatch_ingest_records", "Raw records read, by format and outcome",
                               ["format", "outcome"], registry=r)
        self.events = Counter("privwatch_ingest_events", "Contract events produced (acknowledged or not yet), by type",
                              ["type"], registry=r)
        self.skipped = Counter("privwatch_ingest_skipped", "Records skipped (well-formed, not a data-access, "
                               "permission or sign-in event), by reason", ["reason"], registry=r)
        self.rejected = Counter("privwatch_ingest_rejected", "Records sent to the dead-letter topic, by reason",
                                ["reason"], registry=r)
        self.commits = Counter("privwatch_ingest_commits", "Offset commits after every produced event was "
                               "acknowledged", registry=r)
        self.produce_failures = Counter("privwatch_ingest_produce_failures", "Events the brokers did not "
                                        "acknowledge (the batch is not committed: it is read again)", registry=r)
        self.identity_gaps = Counter("privwatch_ingest_identity_gaps", "Principals the directory does not know, and "
                                     "grants whose actor's admin status is unknown", ["gap"], registry=r)
        self.reloads = Counter("privwatch_ingest_reference_reloads", "Directory and catalog (re)loads, by outcome",
                               ["what", "outcome"], registry=r)
        Info("privwatch_ingest_build", "Build information", registry=r).info({"version": __version__, "format": fmt})
        for outcome in OUTCOMES:
            self.records.labels(fmt, outcome)
        for etype in EVENT_TYPES:
            self.events.labels(etype)
        for gap in ("not_in_directory", "actor_admin_unknown"):
            self.identity_gaps.labels(gap)
        for what in ("directory", "catalog"):
            for outcome in ("ok", "failed"):
                self.reloads.labels(what, outcome)
