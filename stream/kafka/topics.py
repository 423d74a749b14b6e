"""Start-up check of privwatch's topics: each exists and has the configuration it needs.

A missing or misconfigured topic used to show up late (a deleted alerts topic: a crash loop after
60 s of blocked sends); now ``privwatch run`` stops at start-up with one line and exit code 5
(:class:`~stream.errors.TopologyError`). What the check learns is kept: the dead-letter topic's
``max.message.bytes`` bounds the dead letters (:meth:`stream.kafka.deadletter.DeadLetter.fit`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from kafka.admin import ConfigResource, ConfigResourceType
from kafka.errors import KafkaConnectionError

from stream.errors import KafkaUnavailable, TopologyError
from stream.kafka import clients
from stream.kafka.deadletter import DEFAULT_LIMIT_BYTES
from stream.settings import Settings

log = logging.getLogger(__name__)

UNKNOWN_TOPIC = 3  # Kafka's UNKNOWN_TOPIC_OR_PARTITION error code
#: roles whose topics must be compacted, and what would otherwise expire
COMPACTED = {"state": "snapshots", "commons": "the partitions' last partials"}


@dataclass(frozen=True)
class TopicFacts:
    """What the service uses of its topics' configuration."""

    dead_letter_max_bytes: int = DEFAULT_LIMIT_BYTES


def roles(settings: Settings, durable_state: bool) -> dict[str, str]:
    """Topic name -> its role, for the topics ``privwatch run`` uses."""
    named = {settings.access_topic: "access", settings.permission_topic: "permission",
             settings.alerts_topic: "alerts", settings.dead_letter_topic: "dead-letter",
             settings.feedback_topic: "feedback"}
    if durable_state:
        named[settings.state_topic] = "state"
        if settings.commons_interval_s:  # signed with the state key: shared across instances only with it
            named[settings.commons_topic] = "commons"
    return named


def describe(settings: Settings, topics: list[str], attempts: int = 3) -> dict[str, dict[str, str] | None]:
    """Each topic's configuration (None: the topic does not exist). A connection that fails while the
    admin client reaches the broker it was told about is tried again (seen with TLS listeners)."""
    for attempt in range(attempts):
        admin = clients.admin(settings)
        try:
            responses = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, t) for t in topics])
            break
        except KafkaConnectionError:
            if attempt == attempts - 1:
                raise KafkaUnavailable(f"the broker at {settings.bootstrap_servers} answered, but a connection to "
                                       "it failed while reading the topics' configuration") from None
            time.sleep(1.0)
        finally:
            admin.close()
    out: dict[str, dict[str, str] | None] = {}
    for response in responses:
        for resource in response.to_object()["resources"]:
            name, code = resource["resource_name"], resource["error_code"]
            if code == UNKNOWN_TOPIC:
                out[name] = None
            elif code:
                raise TopologyError(f"cannot read the configuration of topic {name!r} (Kafka error {code}); "
                                    "the client needs DescribeConfigs on privwatch's topics")
            else:
                out[name] = {e["config_names"]: e["config_value"] for e in resource["config_entries"]}
    return out


def check_topics(settings: Settings, durable_state: bool = True) -> TopicFacts:
    """Raise :class:`TopologyError` (one line) unless every topic exists as needed; return what the
    service keeps of their configuration."""
    named = roles(settings, durable_state)
    configs = describe(settings, list(named))
    missing = [f"{role} ({topic})" for topic, role in named.items() if configs.get(topic) is None]
    if missing:
        raise TopologyError(f"missing topic(s): {', '.join(missing)}; create them (docs/operations.md lists each "
                            "topic's configuration) or run with --create-topics")
    for topic, role in named.items():
        policy = (configs[topic] or {}).get("cleanup.policy", "")
        if role in COMPACTED and "compact" not in policy.split(","):
            raise TopologyError(f"{role} topic {topic!r} has cleanup.policy={policy}; it must be compact "
                                f"({COMPACTED[role]} would expire with the retention)")
    dead = configs[settings.dead_letter_topic] or {}
    if dead.get("retention.ms") == "-1":
        log.warning("dead-letter topic keeps records forever (retention.ms=-1); they hold producers' raw records, "
                    "personal data included: give it a retention (docs/operations.md)")
    return TopicFacts(dead_letter_max_bytes=int(dead.get("max.message.bytes") or DEFAULT_LIMIT_BYTES))


def prune_inputs(consumer: Any, inputs: list[str], authentication_topic: str) -> None:
    """Leave the authentication topic out of ``inputs`` (in place) while it does not exist (deployments
    from before it), with a warning; the other inputs must exist (the co-partitioning check says so)."""
    if authentication_topic in inputs and authentication_topic not in consumer.topics():
        log.warning("authentication topic missing topic=%s; running without sign-ins", authentication_topic)
        inputs.remove(authentication_topic)
