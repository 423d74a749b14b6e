"""``privwatch state repartition``: after the input topics gained partitions, move each principal's state
to its new partition (:mod:`stream.state.repartition`) and commit the group's offsets that name it.

Run it with every instance of the group stopped (docs/state.md, "Adding input partitions"); it takes
the service's settings (the brokers, the group, the state topic and its keys).
"""

from __future__ import annotations

import argparse
import logging

from kafka import OffsetAndMetadata, TopicPartition

from detectors.engine import Engine
from stream.config import add_flags, load_settings
from stream.detection import engine_config
from stream.errors import TopologyError
from stream.kafka import clients
from stream.service import durable
from stream.state.repartition import repartition

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("state", help="durable state maintenance (the service stopped)")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    r = actions.add_parser("repartition", help="move each principal's state to its partition after the input "
                                               "topics gained partitions")
    add_flags(r)
    r.add_argument("--from-partitions", type=int, required=True, help="the input partition count the state was "
                                                                        "written for")
    r.set_defaults(func=run_repartition)


def run_repartition(args: argparse.Namespace) -> int:
    settings = load_settings({k: v for k, v in vars(args).items() if k not in ("from_partitions", "action")})
    keys = durable.state_keys(settings)
    if keys is None:
        raise TopologyError("state repartition needs durable state (a state_key)")
    inputs = [settings.access_topic, settings.permission_topic, settings.authentication_topic]
    producer = clients.producer(settings)
    group = clients.consumer(settings)
    try:
        inputs = [topic for topic in inputs if topic in group.topics()]  # as the service: sign-ins are optional
        partitions = len(group.partitions_for_topic(settings.access_topic) or ())
        if partitions <= args.from_partitions:
            raise TopologyError(f"the input topics have {partitions} partitions: nothing to move from "
                                f"{args.from_partitions}")
        old = durable.state_store(settings, producer, keys, group, lambda reason: None)
        new = durable.state_store(settings, producer, keys, group, lambda reason: None)
        old.partitions, new.partitions = args.from_partitions, partitions
        config = engine_config(settings)
        moved = repartition(old, new, lambda: Engine(config), inputs, lambda: producer.flush(60),
                            shared=settings.commons_interval_s > 0)
        commits = {TopicPartition(topic, q): OffsetAndMetadata(offset, m.metadata(), -1)
                   for q, m in moved.items() for topic, offset in m.offsets.items()}
        group.commit(commits)
    finally:
        group.close(autocommit=False)
        producer.close()
    log.info("state repartition done from=%d to=%d principals=%d", args.from_partitions, partitions,
             sum(m.principals for m in moved.values()))
    return 0
