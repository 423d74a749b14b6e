"""Where a probe's latency goes, for ``privwatch bench``'s latency phase.

Each probe's time from the load generator to its alert is split at two record timestamps, both
read from the one wall clock of this machine (Kafka's ``CreateTime``, in milliseconds):

- **generator**: from handing the probe to the console producer's pipe to that producer's send
  (the probe record's timestamp): the load generator's own delay;
- **service**: from there to the service handing the alert to its producer (the alert record's
  timestamp): the console producer's batching (it lingers 5 ms) and the broker's append, then the
  service's fetch, the merge with the other input topic, and the detectors;
- **delivery**: from there to the listener consuming the alert: the service's producer (linger,
  acknowledgement), the broker, and the listener's fetch.
"""

from __future__ import annotations

import time
from typing import Any

#: The parts of a probe's latency, in order (see the module docstring).
STAGES = ("generator", "service", "delivery")
#: How long reading the probes' records back may take.
READ_TIMEOUT_S = 30.0


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of a non-empty list.

    >>> percentile([1.0, 2.0, 3.0, 4.0], 50), percentile([1.0, 2.0, 3.0, 4.0], 99)
    (2.0, 4.0)
    """
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def probe_key(alert_id: str) -> str:
    """The key (the principal's id) of the probe record that paged with ``alert_id``.

    >>> probe_key("privilege:bench-probe-ab12cd-7:probe-ab12cd-7")
    'bench-probe-ab12cd-7'
    """
    return alert_id.split(":")[1]


def produced_at(bootstrap: str, topic: str, prefix: str, since: float) -> dict[str, float]:
    """The timestamp (seconds) of every record on ``topic`` whose key starts with ``prefix``, from the
    records appended since ``since`` (epoch seconds) to the topic's current end."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(tps)
        ends = consumer.end_offsets(tps)
        starts = consumer.offsets_for_times({tp: int(since * 1000) for tp in tps})
        for tp in tps:
            found = starts.get(tp)
            consumer.seek(tp, found.offset if found is not None else ends[tp])
        wanted = prefix.encode()
        out: dict[str, float] = {}
        deadline = time.time() + READ_TIMEOUT_S
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            if time.time() > deadline:
                raise RuntimeError(f"could not read the probes back from {topic} in {READ_TIMEOUT_S:.0f} s")
            for records in consumer.poll(timeout_ms=200).values():
                for record in records:
                    if record.key is not None and record.key.startswith(wanted):
                        out[record.key.decode()] = record.timestamp / 1000.0
        return out
    finally:
        consumer.close()


def split(sent_at: dict[str, float], produced: dict[str, float], created: dict[str, float],
          received: dict[str, float]) -> dict[str, Any]:
    """Percentiles (nearest rank) of each stage over the probes with all four times, and the stages
    of the slowest of them; ``{}`` when none has them all. Times in seconds, results in milliseconds.

    >>> sent = {"privilege:p-1:e1": 10.0, "privilege:p-2:e2": 11.0, "privilege:p-3:e3": 12.0}
    >>> produced = {"p-1": 10.01, "p-2": 11.02, "p-3": 12.01}
    >>> created = {"privilege:p-1:e1": 10.05, "privilege:p-2:e2": 11.5}
    >>> received = {"privilege:p-1:e1": 10.06, "privilege:p-2:e2": 11.52}
    >>> parts = split(sent, produced, created, received)
    >>> parts["probes"], parts["service"]
    (2, {'p50': 40.0, 'p99': 480.0, 'max': 480.0})
    >>> parts["slowest"]
    {'total': 520.0, 'generator': 20.0, 'service': 480.0, 'delivery': 20.0}
    """
    rows = []
    for alert_id, sent in sent_at.items():
        key = probe_key(alert_id)
        if alert_id in received and alert_id in created and key in produced:
            times = (sent, produced[key], created[alert_id], received[alert_id])
            rows.append([(b - a) * 1000.0 for a, b in zip(times, times[1:], strict=False)])
    if not rows:
        return {}
    out: dict[str, Any] = {"probes": len(rows)}
    for i, stage in enumerate(STAGES):
        values = [row[i] for row in rows]
        out[stage] = {"p50": round(percentile(values, 50), 1), "p99": round(percentile(values, 99), 1),
                      "max": round(max(values), 1)}
    slowest = max(rows, key=sum)
    out["slowest"] = {"total": round(sum(slowest), 1), **{s: round(v, 1) for s, v in zip(STAGES, slowest, strict=True)}}
    return out
