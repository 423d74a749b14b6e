"""Pytest fixtures for tests against a real Apache Kafka broker.

The broker is the project's own single-node KRaft Kafka (``dev/kafka/broker.py``), started once per
test session on free ports with its data in a temporary directory. Set ``PRIVWATCH_TEST_BOOTSTRAP`` to
``HOST:PORT`` to run against an existing broker instead; tests that need to restart or kill the broker
are then skipped, and only those.

A missing Java or missing Kafka jars make the fixtures *fail*, never skip: CI expects real Kafka.

Fixtures
--------
kafka_broker : session
    A running :class:`LocalKafka` (or :class:`ExternalKafka`).
kafka_bootstrap : session
    Its bootstrap address, ``"127.0.0.1:PORT"``.
isolated_kafka : function
    A private broker for destructive tests (kill -9, restarts) that must not disturb other tests.
fresh_topics : function
    ``make(n_partitions=3, names=ROLES) -> {role: topic}``; uniquely named topics, deleted afterwards.
group_id : function
    A unique consumer group id.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import pytest

from stream.kafka.clients import FEEDBACK_TOPIC_CONFIG

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
BROKER_PY = ROOT / "dev" / "kafka" / "broker.py"
ENV_BOOTSTRAP = "PRIVWATCH_TEST_BOOTSTRAP"
# C1-only JIT halves the broker's start-up CPU (about 10 -> 5 CPU-seconds); plenty fast for tests.
TEST_JVM_OPTS = ("-XX:TieredStopAtLevel=1",)
ROLES = ("access", "permission", "alerts", "dead-letter", "feedback", "state", "commons")
COMPACTED_ROLES = frozenset({"state", "commons"})
#: roles created with a configuration of their own, as ``privwatch run --create-topics`` makes them
ROLE_CONFIGS = {"feedback": dict(FEEDBACK_TOPIC_CONFIG)}


def _load_broker_module() -> ModuleType:
    """Import ``dev/kafka/broker.py`` (not a package) as module ``privwatch_local_kafka``."""
    name = "privwatch_local_kafka"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BROKER_PY)
    assert spec is not None and spec.loader is not None, BROKER_PY
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


local_kafka = _load_broker_module()
LocalKafka = local_kafka.LocalKafka


class Broker(Protocol):
    """What tests may use of a broker fixture (:class:`LocalKafka` or :class:`ExternalKafka`)."""

    bootstrap: str

    def running(self) -> bool: ...
    def start(self) -> Any: ...
    def wait_ready(self, timeout_s: float = 60.0) -> Any: ...
    def stop(self, timeout_s: float = 20.0) -> None: ...
    def kill(self) -> None: ...
    def restart(self, timeout_s: float = 90.0, graceful: bool = True) -> Any: ...


class ExternalKafka:
    """A broker given by ``PRIVWATCH_TEST_BOOTSTRAP``; it cannot be restarted or killed by tests.

    Parameters
    ----------
    bootstrap : str
        ``HOST:PORT`` of the broker.
    """

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap

    def __repr__(self) -> str:
        return f"ExternalKafka(bootstrap={self.bootstrap!r})"

    def running(self) -> bool:
        """Assume the external broker is up (tests fail clearly if it is not)."""
        return True

    def _unavailable(self, what: str) -> None:
        pytest.skip(f"{what}() needs the test-owned broker; {ENV_BOOTSTRAP} points at an external one")

    def start(self) -> ExternalKafka:
        self._unavailable("start")
        return self

    def wait_ready(self, timeout_s: float = 60.0) -> ExternalKafka:
        return self

    def stop(self, timeout_s: float = 20.0) -> None:
        self._unavailable("stop")

    def kill(self) -> None:
        self._unavailable("kill")

    def restart(self, timeout_s: float = 90.0, graceful: bool = True) -> ExternalKafka:
        self._unavailable("restart")
        return self


def start_local_kafka(data_dir: Path, heap: str = "512m", timeout_s: float = 90.0) -> Broker:
    """Start a :class:`LocalKafka` on free ports with its data in ``data_dir`` and wait until ready.

    Raises
    ------
    local_kafka.KafkaStartError
        When Java or the jars are missing or the broker does not come up (tests then fail).
    """
    port, controller_port = local_kafka.free_ports(2)
    broker: Broker = LocalKafka(port, controller_port, data_dir=data_dir, heap=heap, jvm_opts=TEST_JVM_OPTS)
    t0 = time.monotonic()
    broker.start().wait_ready(timeout_s)
    log.info("test Kafka ready on %s in %.1fs", broker.bootstrap, time.monotonic() - t0)
    return broker


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A running Kafka broker for the whole session (see the module docstring)."""
    external = os.environ.get(ENV_BOOTSTRAP, "").strip()
    if external:
        yield ExternalKafka(external)
        return
    broker = start_local_kafka(tmp_path_factory.mktemp("kafka"))
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: Broker) -> str:
    """Bootstrap address of the session broker."""
    return kafka_broker.bootstrap


@pytest.fixture
def isolated_kafka(tmp_path: Path) -> Iterator[Broker]:
    """A private broker for one test, free to be killed and restarted."""
    if os.environ.get(ENV_BOOTSTRAP, "").strip():
        pytest.skip(f"needs a test-owned broker; {ENV_BOOTSTRAP} points at an external one")
    broker = start_local_kafka(tmp_path / "kafka")
    try:
        yield broker
    finally:
        broker.stop()


def _ensure_running(broker: Broker) -> None:
    """Bring the session broker back if an earlier test killed or stopped it."""
    if not broker.running():
        log.warning("session Kafka was down; restarting it")
        broker.start().wait_ready(90.0)


def _admin(bootstrap: str) -> Any:
    """Return a ``KafkaAdminClient`` for ``bootstrap``."""
    from kafka.admin import KafkaAdminClient

    return KafkaAdminClient(
        bootstrap_servers=bootstrap, client_id="privwatch-tests", request_timeout_ms=30000
    )


def _wait_for_leaders(bootstrap: str, topics: list[str], n_partitions: int, timeout_s: float = 30.0) -> None:
    """Until every partition of ``topics`` is visible to a client (leaders elected)."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            consumer.topics()
            if all(len(consumer.partitions_for_topic(t) or ()) == n_partitions for t in topics):
                return
            time.sleep(0.1)
        raise TimeoutError(f"topics not ready after {timeout_s}s: {topics}")
    finally:
        consumer.close()


@pytest.fixture
def fresh_topics(kafka_broker: Broker) -> Iterator[Callable[..., dict[str, str]]]:
    """Factory of uniquely named topics, ready for use (leaders elected); deleted after the test.

    ``make(n_partitions=3, names=ROLES)`` returns ``{role: topic_name}``. The ``state`` and ``commons``
    roles are created with ``cleanup.policy=compact``.
    """
    _ensure_running(kafka_broker)
    admin = _admin(kafka_broker.bootstrap)
    created: list[str] = []

    def make(n_partitions: int = 3, names: Sequence[str] = ROLES) -> dict[str, str]:
        prefix = f"pw-{uuid.uuid4().hex[:10]}"
        topics = {role: f"{prefix}.{role}" for role in names}
        from kafka.admin import NewTopic

        specs = [
            NewTopic(topic, n_partitions, 1,
                     topic_configs={"cleanup.policy": "compact"} if role in COMPACTED_ROLES
                     else ROLE_CONFIGS.get(role, {}))
            for role, topic in topics.items()
        ]
        admin.create_topics(specs, timeout_ms=30000)
        created.extend(topics.values())
        _wait_for_leaders(kafka_broker.bootstrap, list(topics.values()), n_partitions)
        return topics

    try:
        yield make
    finally:
        try:
            if created and kafka_broker.running():
                admin.delete_topics(created, timeout_ms=30000)
        except Exception as exc:  # noqa: BLE001 - cleanup must not mask the test's own result
            log.warning("could not delete test topics: %s", exc)
        finally:
            admin.close()


@pytest.fixture
def group_id() -> str:
    """A unique consumer group id."""
    return f"pw-test-{uuid.uuid4().hex[:12]}"
