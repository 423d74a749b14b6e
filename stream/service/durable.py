"""Durable state's start-up: the keys (required unless durable state is off, rotated by id) and the
state store, anchored to the generation the group's committed offsets name (rollback refused)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kafka import TopicPartition

from stream.errors import ConfigError, TopologyError
from stream.kafka import clients
from stream.service.checkpoint import parse_anchor
from stream.settings import Settings
from stream.state.snapshot import MIN_KEY_BYTES
from stream.state.store import Anchor, StateStore


def state_keys(settings: Settings) -> dict[str, bytes] | None:
    """The state keys by id (None: durable state is off); ConfigError when they cannot be used."""
    if not settings.durable_state:
        return None
    if settings.state_key is None:
        raise ConfigError("durable state needs a state_key (>= 32 bytes: PRIVWATCH_STATE_KEY or state_key_file); "
                          "or run with --no-durable-state, and every restart starts cold")
    try:
        keys = settings.verify_keys()
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if any(len(key) < MIN_KEY_BYTES for key in keys.values()):
        raise ConfigError(f"state keys must be at least {MIN_KEY_BYTES} bytes")
    return keys


def committed_anchors(consumer: Any, inputs: list[str]) -> Callable[[int], Anchor | None]:
    """``anchor(partition)``: the checkpoint the group's committed offsets of that input partition name
    in their metadata (the oldest, should a commit have reached some topics only: its state is intact; None:
    none)."""

    def anchor(partition: int) -> Anchor | None:
        found = []
        for topic in inputs:
            committed = consumer.committed(TopicPartition(topic, partition), metadata=True)
            value = None if committed is None else parse_anchor(committed.metadata)
            if value is not None:
                found.append(value)
        return min(found, key=lambda a: a.generation, default=None)

    return anchor


def check_partitioning(store: StateStore, partitions: int) -> None:
    """Refuse to start (exit 5) when the group's commits say its state was written for another input
    partition count: the input topics grew, and ``privwatch state repartition`` has not moved the
    principals to their new partitions yet (docs/state.md)."""
    store.partitions = partitions
    anchor = store.committed(0)
    if anchor is not None and anchor.partitions is not None and anchor.partitions != partitions:
        raise TopologyError(f"the state topic holds state for {anchor.partitions} input partitions and the input "
                            f"topics have {partitions}: run privwatch state repartition first (docs/state.md)")


def state_store(settings: Settings, producer: Any, keys: dict[str, bytes], consumer: Any,
                refused: Callable[[str], None]) -> StateStore:
    return StateStore(producer, lambda: clients.consumer(settings, group_id=None), settings.state_topic,
                      settings.group_id, keys[settings.state_key_id], refused=refused, key_id=settings.state_key_id,
                      verify_keys=keys,
                      committed=committed_anchors(consumer, [settings.access_topic, settings.permission_topic]))
