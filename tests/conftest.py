"""Shared pytest fixtures. Kafka fixtures live in ``tests/kafka_fixtures.py``; add others below."""

from kafka_fixtures import (  # noqa: F401 - re-exported as fixtures
    fresh_topics,
    group_id,
    isolated_kafka,
    kafka_bootstrap,
    kafka_broker,
)
