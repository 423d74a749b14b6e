"""kafka-python clients built from :class:`~stream.settings.Settings`, topic creation, and the
co-partitioning check. kafka-python types stay in ``stream/``."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import KafkaError, NoBrokersAvailable, TopicAlreadyExistsError

from stream.errors import KafkaUnavailable, TopologyError
from stream.settings import Settings

log = logging.getLogger(__name__)

#: Upper bound of one fetch response. kafka-python 2.3 refuses network frames larger than
#: ``receive_message_max_bytes`` (default 1,000,000) while its ``fetch_max_bytes`` defaults to 50 MiB:
#: a consumer owning a few partitions with a backlog got "Invalid frame length", dropped the
#: connection and refreshed metadata at every such fetch. The frame limit must cover a whole response
#: (and the broker may exceed fetch_max_bytes by one record batch, at most message.max.bytes, 1 MiB).
FETCH_MAX_BYTES = 16 << 20
#: The feedback topic's configuration. Keyed by verdict id and compacted, so a re-sent verdict is kept
#: once; deleted after 31 days, longer than any verdict lasts (30 days and the signing skew), so what is
#: in force survives retention while a flood of junk does not stay forever; stamped by the broker on
#: append, which a verdict's signed time is checked against (a writer cannot choose it).
FEEDBACK_TOPIC_CONFIG = {
    "cleanup.policy": "compact,delete",
    "retention.ms": str(31 * 86_400_000),
    "message.timestamp.type": "LogAppendTime",
}

#: The commons topic's configuration: compacted (the latest partial per input partition stays), and
#: compacted soon (``min.cleanable.dirty.ratio``, ``segment.ms``): each instance rewrites its partials
#: every few seconds, and a reader starting up reads what compaction has not removed yet.
COMMONS_TOPIC_CONFIG = {
    "cleanup.policy": "compact",
    "min.cleanable.dirty.ratio": "0.1",
    "segment.ms": str(600_000),
    "max.message.bytes": str(8 << 20),
}


@contextlib.contextmanager
def _reaching(bootstrap_servers: str) -> Iterator[None]:
    """Turn kafka-python's "no broker answered" into one line an operator can act on."""
    try:
        yield
    except NoBrokersAvailable:
        raise KafkaUnavailable(f"no Kafka broker answered at {bootstrap_servers}; is it running? "
                               "(set --bootstrap-servers or PRIVWATCH_BOOTSTRAP_SERVERS)") from None


def consumer(settings: Settings, **overrides: Any) -> KafkaConsumer:
    """A consumer with manual commits (subscription or assignment is the caller's) whose fetches are
    answered as soon as anything is there (Kafka's 1-byte minimum). For the state and feedback readers."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "group_id": settings.group_id,
        "client_id": settings.client_id,
        "enable_auto_commit": False,
        "auto_offset_reset": settings.auto_offset_reset,
        "max_poll_records": settings.max_poll_records,
        "fetch_max_wait_ms": min(settings.poll_timeout_ms, 500),
        "fetch_max_bytes": FETCH_MAX_BYTES,
        "receive_message_max_bytes": FETCH_MAX_BYTES + (2 << 20),
        "reconnect_backoff_max_ms": 5000,
        **settings.kafka_security(),
    }
    options.update(overrides)
    with _reaching(settings.bootstrap_servers):
        return KafkaConsumer(**options)


def input_consumer(settings: Settings) -> KafkaConsumer:
    """The service's group consumer of the input topics, fetching ``fetch_min_bytes`` at a time."""
    return consumer(settings, fetch_min_bytes=settings.fetch_min_bytes, fetch_max_wait_ms=settings.fetch_max_wait_ms)


#: how long the producer keeps trying to deliver a record before its send fails
DELIVERY_TIMEOUT_S = 45.0


def producer(settings: Settings, **overrides: Any) -> KafkaProducer:
    """An idempotence-friendly producer for alerts, dead letters and state (acks=all)."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "client_id": settings.client_id,
        "acks": "all",
        "linger_ms": 5,
        "retries": 10,
        "max_request_size": 8 << 20,
        # a send to a topic that is gone waits this long for its metadata, in the loop, then fails (and
        # the outputs hold what follows: stream.kafka.outputs); kafka-python's 60 s default stalled it
        "max_block_ms": 10_000,
        # a record not acknowledged this long (a topic deleted after its metadata was cached) is
        # refused, so the outputs hold what follows and the instance reports not ready, instead of
        # kafka-python's 120 s of consuming on with nothing committable
        "delivery_timeout_ms": int(DELIVERY_TIMEOUT_S * 1000),
        **settings.kafka_security(),
    }
    options.update(overrides)
    with _reaching(settings.bootstrap_servers):
        return KafkaProducer(**options)


def admin(settings: Settings) -> KafkaAdminClient:
    with _reaching(settings.bootstrap_servers):
        return KafkaAdminClient(
            bootstrap_servers=settings.bootstrap_servers, client_id=settings.client_id, **settings.kafka_security()
        )


def create_topics(settings: Settings, partitions: int = 6) -> None:
    """Create privwatch's topics if missing (the state topic compacted, the dead-letter topic with its
    retention, the feedback topic as :data:`FEEDBACK_TOPIC_CONFIG` says); existing ones are left alone."""
    specs = [
        NewTopic(settings.access_topic, partitions, 1),
        NewTopic(settings.permission_topic, partitions, 1),
        NewTopic(settings.authentication_topic, partitions, 1),
        NewTopic(settings.alerts_topic, partitions, 1),
        NewTopic(settings.dead_letter_topic, 1, 1,
                 topic_configs={"retention.ms": str(settings.dead_letter_retention_ms)}),
        NewTopic(settings.feedback_topic, 1, 1, topic_configs=dict(FEEDBACK_TOPIC_CONFIG)),
        NewTopic(settings.state_topic, partitions, 1, topic_configs={"cleanup.policy": "compact"}),
        NewTopic(settings.commons_topic, 1, 1, topic_configs=dict(COMMONS_TOPIC_CONFIG)),
    ]
    client = admin(settings)
    try:
        for spec in specs:
            with contextlib.suppress(TopicAlreadyExistsError):
                client.create_topics([spec])
    finally:
        client.close()


def read_to_end(kafka: KafkaConsumer) -> bool:
    """True when partitions are assigned and every one is read up to its log end (what is read may
    still be buffered); False too when the broker does not answer."""
    owned = list(kafka.assignment())
    if not owned:
        return False
    try:
        ends = kafka.end_offsets(owned)
        positions = {tp: kafka.position(tp, timeout_ms=5000) for tp in owned}
    except KafkaError:
        return False
    return all(pos is not None and pos >= ends.get(tp, 0) for tp, pos in positions.items())


def check_copartitioned(kafka: KafkaConsumer, topics: list[str]) -> int:
    """Return the shared partition count of ``topics`` or raise :class:`TopologyError`.

    Access events are keyed by principal and permission events by target, so one principal's
    events meet in one partition number only if both topics have the same partition count.
    """
    counts = {}
    kafka.topics()  # forces a full metadata fetch, so partitions_for_topic sees topics not yet subscribed
    for topic in topics:
        partitions = kafka.partitions_for_topic(topic)
        if not partitions:
            raise TopologyError(f"input topic {topic!r} does not exist (or is not visible to this client)")
        counts[topic] = len(partitions)
    if len(set(counts.values())) != 1:
        detail = ", ".join(f"{t}={n}" for t, n in counts.items())
        raise TopologyError(
            f"input topics are not co-partitioned ({detail}): a principal's access and permission events "
            "would land in different partitions; give them the same partition count"
        )
    return next(iter(counts.values()))
