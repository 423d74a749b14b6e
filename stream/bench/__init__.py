"""``privwatch bench`` and the measurements behind it: throughput against a bare kafka-python
consumer, end-to-end latency, state size and memory (:mod:`.cli` describes the phases)."""
