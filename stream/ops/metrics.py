"""Prometheus metrics. Every label is low-cardinality: never a principal, resource or subject id.

Objects take a registry (tests use a fresh ``CollectorRegistry``); label values are
pre-initialised so dashboards show zeros instead of gaps; model internals (live principals, state
bytes) are read at scrape time by :class:`EngineCollector`.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, PlatformCollector, ProcessCollector
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from stream import __version__

EVENT_TYPES = ("access", "permission", "authentication", "unknown")
OUTCOMES = ("processed", "dead_lettered")
DEAD_LETTER_REASONS = (
    "empty", "too_large", "malformed_json", "duplicate_key", "schema", "future_timestamp", "ancient_timestamp",
    "internal",
)
LEVELS = ("info", "low", "medium", "high", "critical")
DRIFT_SIGNALS = ("organisation", "department")
SUPPRESSION_REASONS = ("allow_list", "correlated")
#: why a feedback record was refused (stream.feedback.verify.REASONS; tests/test_feedback.py keeps them equal)
FEEDBACK_REFUSALS = ("not_configured", "too_large", "malformed", "unsigned", "unknown_analyst", "unknown_key",
                     "not_emitted", "own_alert", "future", "backdated", "expired", "bad_expiry", "bad_signature",
                     "revoked", "capacity")
#: why a commons record was refused (stream.state.commons.REASONS; tests/test_commons.py keeps them equal)
COMMONS_REFUSALS = ("unsigned", "bad_signature", "format", "partitions", "malformed")
#: the states of the partitions whose partials the engines see (docs/commons.md)
COMMONS_STATES = ("local", "remote", "stale")
LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400)


class Metrics:
    """All of the service's metric objects, registered on one registry."""

    def __init__(self, registry: CollectorRegistry, detectors: Iterable[str] = ()) -> None:
        r = registry
        self.registry = registry
        self.events = Counter("privwatch_events_consumed", "Input records consumed, by event type and outcome",
                              ["type", "outcome"], registry=r)
        self.dead_letters = Counter("privwatch_dead_letters", "Records sent to the dead-letter topic, by reason",
                                    ["reason"], registry=r)
        self.alerts = Counter("privwatch_alerts", "Alerts raised, by detector and level",
                              ["detector", "level"], registry=r)
        self.severity = Histogram("privwatch_alert_severity", "Calibrated severity (0-100) of raised alerts",
                                  ["detector"], buckets=(10, 20, 30, 40, 50, 60, 65, 70, 80, 90, 100), registry=r)
        self.event_lag = Histogram("privwatch_event_lag_seconds", "Event time to processed (wall clock)",
                                   buckets=LAG_BUCKETS, registry=r)
        self.batch_seconds = Histogram("privwatch_batch_duration_seconds", "Time to process one polled batch",
                                       buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
                                       registry=r)
        self.merge_timeouts = Counter(
            "privwatch_merge_timeouts",
            "Records released after waiting for their partition's other input topic, which had nothing to "
            "order them against: merge_wait_ms when its lag was not known, the merge's bound "
            "(stream.service.merge.MAX_BEHIND_WAIT_S) when it had records to fetch",
            registry=r)
        self.merge_hold = Histogram(
            "privwatch_merge_hold_seconds",
            "Time from a record's poll to its processing: its wait in the event-time merge for its partition's "
            "other input topic (one record in 16 observed, as for the event lag)",
            buckets=(0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60), registry=r)
        self.batch_records = Histogram("privwatch_batch_records", "Records per polled batch",
                                       buckets=(1, 10, 100, 500, 1000, 2000, 5000, 10000), registry=r)
        self.consumer_lag = Gauge("privwatch_consumer_lag_records", "Records behind the log end, per partition",
                                  ["topic", "partition"], registry=r)
        self.commits = Counter("privwatch_commits", "Offset commits that succeeded", registry=r)
        self.commit_failures = Counter("privwatch_commit_failures", "Offset commits that failed", registry=r)
        self.rebalances = Counter("privwatch_rebalances", "Partition assignment changes", ["change"], registry=r)
        self.assigned = Gauge("privwatch_assigned_partitions", "Input partitions owned by this instance",
                              registry=r)
        self.snapshot_age = Gauge("privwatch_snapshot_age_seconds", "Age of the oldest partition snapshot",
                                  registry=r)
        self.snapshots = Counter("privwatch_snapshots", "State snapshots written, by outcome", ["outcome"],
                                 registry=r)
        self.snapshot_bytes = Gauge("privwatch_snapshot_bytes", "Size of the last snapshot written", registry=r)
        self.snapshot_blocked = Histogram(
            "privwatch_snapshot_blocked_seconds",
            "Poll-loop time spent on checkpoints of the state, by step (cut: the shared state encoded; slice: "
            "changed principals written within a poll's budget; final: a whole checkpoint at shutdown or revoke)",
            ["how"], buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30), registry=r)
        self.state_records = Counter("privwatch_state_records", "Principal records written to the state topic "
                                     "(principals changed since the previous checkpoint)", registry=r)
        self.restores = Counter("privwatch_state_restores",
                                "Partition state restores, by outcome (restored; refused: tampered, rolled back or "
                                "unreadable; bootstrap: rebuilt from the input's retained history, all of it or the "
                                "detectors whose state could not be migrated; cold: no state and nothing to "
                                "rebuild from)", ["outcome"], registry=r)
        self.rebuilding = Gauge("privwatch_state_rebuilding_partitions",
                                "Partitions whose state is being rebuilt from the input's history (paused meanwhile)",
                                registry=r)
        self.commons_partitions = Gauge(
            "privwatch_commons_partitions", "Input partitions whose partial aggregates the engines see, by state: "
            "local (owned here), remote (another instance's, fresh), stale (older than commons_max_age_s: left "
            "out)", ["state"], registry=r)
        self.commons_published = Counter("privwatch_commons_published", "Partials the commons topic acknowledged",
                                         registry=r)
        self.commons_publish_failures = Counter(
            "privwatch_commons_publish_failures", "Partials the commons topic did not take (the next interval sends "
            "again)", registry=r)
        self.commons_refused = Counter("privwatch_commons_refused", "Commons records refused (never unpickled "
                                       "unless signed), by reason", ["reason"], registry=r)
        self.commons_oldest_age = Gauge("privwatch_commons_oldest_age_seconds", "Age of the oldest remote partial "
                                        "in use (0: none)", registry=r)
        self.drift = Counter("privwatch_drift_detections", "Organisation-wide drift detections, by signal",
                             ["signal"], registry=r)
        self.am_sends = Counter("privwatch_alertmanager_sends", "Alertmanager posts, by outcome", ["outcome"],
                                registry=r)
        self.am_queue = Gauge("privwatch_alertmanager_queue", "Alerts waiting to be sent to Alertmanager",
                              registry=r)
        self.feedback = Counter("privwatch_feedback", "Analyst verdicts applied (authentic), by verdict",
                                ["verdict"], registry=r)
        self.feedback_refused = Counter("privwatch_feedback_refused",
                                        "Feedback records refused (forged, stale, malformed...), by reason",
                                        ["reason"], registry=r)
        self.suppressed = Counter("privwatch_alerts_suppressed", "Alerts suppressed, by reason", ["reason"],
                                  registry=r)
        self.last_event_ts = Gauge("privwatch_last_event_timestamp_seconds", "Event time of the newest event",
                                   registry=r)
        self.identity_gaps = Counter(
            "privwatch_identity_gaps", "Events with something the directory could not tell: a principal it does "
            "not know, or a grant whose actor's admin status is unknown (then no non-admin finding is possible)",
            ["gap"], registry=r)
        self.reloads = Counter("privwatch_reference_reloads", "Directory and catalog (re)loads, by outcome",
                               ["what", "outcome"], registry=r)
        self.produced = Counter("privwatch_records_produced", "Output records the broker acknowledged, by topic",
                                ["topic"], registry=r)
        self.produce_failures = Counter(
            "privwatch_produce_failures",
            "Output sends the broker refused or that failed, by topic (consuming stops until they are acknowledged)",
            ["topic"], registry=r)
        self.ready = Gauge("privwatch_ready", "1 when ready: partitions restored and every output acknowledged",
                           registry=r)
        self.build = Info("privwatch_build", "Build information", registry=r)
        self.build.info({"version": __version__, "python": platform.python_version()})
        ProcessCollector(registry=r)  # process_* (CPU, memory, open files) on the service's own registry
        PlatformCollector(registry=r)
        self._preinit(detectors)

    def outputs(self, *topics: str) -> None:
        """Pre-initialise the output metrics of ``topics`` (the service's, known once settings are)."""
        for topic in topics:
            self.produced.labels(topic)
            self.produce_failures.labels(topic)

    def _preinit(self, detectors: Iterable[str]) -> None:
        for etype in EVENT_TYPES:
            for outcome in OUTCOMES:
                self.events.labels(etype, outcome)
        for reason in DEAD_LETTER_REASONS:
            self.dead_letters.labels(reason)
        for detector in detectors:
            self.severity.labels(detector)
            for level in LEVELS:
                self.alerts.labels(detector, level)
        for change in ("assigned", "revoked"):
            self.rebalances.labels(change)
        for outcome in ("ok", "failed"):
            self.snapshots.labels(outcome)
        for how in ("cut", "slice", "final"):
            self.snapshot_blocked.labels(how)
        for outcome in ("restored", "refused", "bootstrap", "cold"):
            self.restores.labels(outcome)
        for outcome in ("ok", "failed", "rejected"):
            self.am_sends.labels(outcome)
        for verdict in ("true_positive", "false_positive", "benign", "revoke"):
            self.feedback.labels(verdict)
        for reason in FEEDBACK_REFUSALS:
            self.feedback_refused.labels(reason)
        for state in COMMONS_STATES:
            self.commons_partitions.labels(state)
        for reason in COMMONS_REFUSALS:
            self.commons_refused.labels(reason)
        for signal in DRIFT_SIGNALS:
            self.drift.labels(signal)
        for reason in SUPPRESSION_REASONS:
            self.suppressed.labels(reason)
        for gap in ("not_in_directory", "actor_admin_unknown"):
            self.identity_gaps.labels(gap)
        for what in ("directory", "catalog"):
            for outcome in ("ok", "failed"):
                self.reloads.labels(what, outcome)


class EngineCollector(Collector):
    """Reads live principals and state bytes from the engines at scrape time."""

    def __init__(self, read: Callable[[], tuple[int, int]], duplicates: Callable[[], int] | None = None) -> None:
        self._read = read
        self._duplicates = duplicates

    def collect(self) -> Iterable[GaugeMetricFamily]:
        principals, state_bytes = self._read()
        yield GaugeMetricFamily("privwatch_live_principals", "Principals with detector state", value=principals)
        yield GaugeMetricFamily("privwatch_state_bytes", "Approximate detector state size", value=state_bytes)
        if self._duplicates is not None:
            yield GaugeMetricFamily("privwatch_duplicate_events_ignored",
                                    "Events ignored because their event_id was seen recently, by the engines of "
                                    "the partitions owned now", value=self._duplicates())
