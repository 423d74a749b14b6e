"""The bench's own topics on the broker under test, and the service's settings over them."""

from __future__ import annotations

import logging
import secrets
import uuid

from stream.settings import Settings

log = logging.getLogger(__name__)


def create_topics(bootstrap: str, partitions: int) -> dict[str, str]:
    from kafka.admin import KafkaAdminClient, NewTopic

    prefix = f"pwbench-{uuid.uuid4().hex[:8]}"
    topics = {role: f"{prefix}.{role}" for role in ("access", "permission", "alerts", "dead-letter", "feedback",
                                                    "state", "commons")}
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="privwatch-bench")
    try:
        admin.create_topics([NewTopic(t, partitions if role in ("access", "permission", "alerts") else 1, 1,
                                      topic_configs={"cleanup.policy": "compact"} if role in ("state", "commons")
                                      else {})
                             for role, t in topics.items()])
    finally:
        admin.close()
    return topics


def delete_topics(bootstrap: str, topics: dict[str, str]) -> None:
    from kafka.admin import KafkaAdminClient

    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="privwatch-bench")
        admin.delete_topics(list(topics.values()))
        admin.close()
    except Exception as exc:  # noqa: BLE001 - cleanup must not hide the result
        log.warning("could not delete bench topics: %s", exc)


def settings_for(bootstrap: str, topics: dict[str, str], group: str) -> Settings:
    """The service as deployed: durable state on (a checkpoint every 30 s), a random key."""
    return Settings(bootstrap_servers=bootstrap, group_id=group, client_id="privwatch-bench",
                    access_topic=topics["access"], permission_topic=topics["permission"],
                    alerts_topic=topics["alerts"], dead_letter_topic=topics["dead-letter"],
                    feedback_topic=topics["feedback"], state_topic=topics["state"], metrics_port=0,
                    commons_topic=topics["commons"], state_key=secrets.token_hex(16))
