"""The triage database fed from the alerts topic, by a consumer in its own group (``triage_group_id``):
offsets are committed only after the alerts they cover are in the database, so a restart re-reads
at most a batch (adding an alert twice changes nothing). A record that is not a contract alert is
counted and logged (without identifiers) and skipped: the service wrote the topic, so it is a bug
or a foreign writer, and the queue must go on."""

from __future__ import annotations

import logging
import threading
from typing import Any

import orjson
from pydantic import ValidationError

from stream.contract.models import Alert
from stream.triage.store import TriageStore

log = logging.getLogger(__name__)


def alerts_in(records: list[Any]) -> tuple[list[dict[str, Any]], int]:
    """The contract alerts among ``records`` (kafka-python records or raw bytes), and how many were not."""
    docs, bad = [], 0
    for record in records:
        value = record if isinstance(record, bytes) else record.value
        try:
            doc = orjson.loads(value or b"")
            Alert.model_validate(doc)
        except (orjson.JSONDecodeError, ValidationError, TypeError):
            bad += 1
            continue
        docs.append(doc)
    return docs, bad


class AlertsFeed(threading.Thread):
    """Polls the alerts topic into the store until :meth:`stop`."""

    def __init__(self, consumer: Any, topic: str, store: TriageStore) -> None:
        super().__init__(name="triage-alerts", daemon=True)
        self.consumer = consumer
        self.store = store
        self.stopping = threading.Event()
        self.added = 0
        self.skipped = 0
        consumer.subscribe([topic])

    def poll_once(self, timeout_ms: int = 500) -> int:
        batch = self.consumer.poll(timeout_ms=timeout_ms, max_records=1000)
        records = [r for rs in batch.values() for r in rs]
        if not records:
            return 0
        docs, bad = alerts_in(records)
        if bad:
            self.skipped += bad
            log.warning("alerts topic records skipped count=%d reason=not_a_contract_alert", bad)
        self.added += self.store.add_alerts(docs)
        self.consumer.commit()
        return len(records)

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                self.poll_once()
        except Exception:  # noqa: BLE001 - logged; the web app stays up and says the queue is stale
            log.exception("alerts feed stopped")
        finally:
            self.consumer.close()

    def stop(self) -> None:
        self.stopping.set()
