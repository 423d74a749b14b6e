"""Running the service (and page delivery) against the real broker, and checking its accounts:
what was consumed equals what was processed plus what was dead-lettered, and what reached each
output topic is what was counted."""

from __future__ import annotations

import threading
import time
from typing import Any

from kafka_helpers import committed, read_all
from prometheus_client import CollectorRegistry

from stream.alertmanager.deliver import Delivery
from stream.ops.metrics import Metrics
from stream.service.service import Service
from stream.settings import Settings


def settings_for(bootstrap: str, topics: dict[str, str], group: str, **extra: Any) -> Settings:
    base: dict[str, Any] = dict(
        bootstrap_servers=bootstrap, group_id=group, access_topic=topics["access"],
        permission_topic=topics["permission"], alerts_topic=topics["alerts"],
        dead_letter_topic=topics["dead-letter"], feedback_topic=topics["feedback"], state_topic=topics["state"],
        metrics_port=0, commit_interval_ms=200, merge_wait_ms=100, durable_state=False)
    base.update({"commons_topic": topics["commons"]} if "commons" in topics else {"commons_interval_s": 0.0})
    return Settings(**(base | extra))


def value(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


class Running:
    """The service in a thread (``max_idle_s`` None: until :meth:`stop`); its result or exception kept."""

    def __init__(self, settings: Settings, max_idle_s: float | None = 3.0, **kwargs: Any) -> None:
        self.metrics = Metrics(CollectorRegistry(), ["volume", "privilege"])
        self.service = Service(settings, self.metrics, **kwargs)
        self.result: int | BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(max_idle_s,), daemon=True)
        self.thread.start()

    def _run(self, max_idle_s: float | None) -> None:
        try:
            self.result = self.service.run(max_idle_s=max_idle_s)
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            self.result = exc

    def wait(self, timeout_s: float = 120.0) -> int | BaseException | None:
        self.thread.join(timeout_s)
        assert not self.thread.is_alive(), f"service did not stop: {self.describe()}"
        return self.result

    def describe(self) -> str:
        """What the service was waiting for (local reads only: the loop's thread owns the clients)."""
        s = self.service
        assigned = sorted(f"{tp.topic}-{tp.partition}" for tp in s.consumer.assignment()) if s.consumer else None
        return (f"assigned={assigned} restoring={sorted(s.partitions.restoring)} merger={len(s.merger)} "
                f"stalled={s.outputs.stalled if s.outputs else None} handled={s.handled_total} "
                f"ready={s.health.ready} blocked={s.health.blocked}")

    def stop(self, timeout_s: float = 120.0) -> int | BaseException | None:
        self.service.request_stop()
        return self.wait(timeout_s)


class Delivering:
    """Page delivery in a thread, as ``privwatch run`` starts it; :meth:`stop` ends it."""

    def __init__(self, settings: Settings, metrics: Metrics | None = None) -> None:
        self.metrics = metrics or Metrics(CollectorRegistry())
        self.delivery = Delivery(settings, self.metrics)
        self.thread = threading.Thread(target=self.delivery.run, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.delivery.stop()
        self.thread.join(60)
        assert not self.thread.is_alive()


def wait_until(predicate: Any, timeout_s: float = 60.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"{what} not met within {timeout_s}s")


def assert_accounted(bootstrap: str, settings: Settings, *runs: Metrics, expect_consumed: int) -> None:
    """Consumed = processed + dead-lettered = committed, and each output topic holds what was counted
    (summed over ``runs`` of the service)."""
    def total(name: str, **labels: str) -> float:
        return sum(value(m, name, **labels) for m in runs)

    processed = sum(total("privwatch_events_consumed_total", type=t, outcome="processed")
                    for t in ("access", "permission"))
    dead = sum(total("privwatch_events_consumed_total", type=t, outcome="dead_lettered")
               for t in ("access", "permission"))
    offsets = committed(bootstrap, settings.group_id, [settings.access_topic, settings.permission_topic])
    assert processed + dead == sum(offsets.values()) == expect_consumed, (processed, dead, offsets)
    alerts = read_all(bootstrap, settings.alerts_topic)
    letters = read_all(bootstrap, settings.dead_letter_topic)
    assert len(alerts) == total("privwatch_records_produced_total", topic=settings.alerts_topic)
    assert len(letters) == total("privwatch_records_produced_total", topic=settings.dead_letter_topic) == dead
    assert dead == sum(total("privwatch_dead_letters_total", reason=r) for r in
                       ("empty", "too_large", "malformed_json", "duplicate_key", "schema", "future_timestamp",
                        "ancient_timestamp", "internal"))
