"""The allocator settings (stream.ops.heap): freed fetch-sized buffers stay on the heap instead of being
returned to the kernel and faulted back in."""

from __future__ import annotations

import subprocess
import sys

import pytest

from stream.ops import heap

#: allocates and frees 1-7 MiB buffers (as fetch responses) with small objects made in between that
#: outlive them; prints the process's minor page faults over the loop
_CHURN = """
import resource, sys
from stream.ops import heap
applied = heap.keep_free_heap(int(sys.argv[1]))
kept = []
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for i in range(150):
    buffer = bytes(bytearray(b"x") * ((1 + i % 7) << 20))
    kept.append(buffer[:100])
    del buffer
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(keep_bytes: int) -> tuple[bool, int]:
    out = subprocess.run([sys.executable, "-c", _CHURN, str(keep_bytes)], capture_output=True, text=True,
                         check=True).stdout.split()
    return out[0] == "True", int(out[1])


def test_freed_buffers_stay_for_reuse_instead_of_faulting_back_in() -> None:
    applied, faults = _faults(128 << 20)
    default_applied, default_faults = _faults(0)
    assert applied and not default_applied
    # glibc's defaults: about 80k faults (each buffer's pages zeroed afresh); kept: a few thousand
    assert faults * 5 < default_faults


def test_nothing_is_set_for_zero() -> None:
    assert heap.keep_free_heap(0) is False


def test_the_service_applies_its_setting_before_it_makes_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    from prometheus_client import CollectorRegistry

    from stream.kafka import clients
    from stream.kafka.topics import TopicFacts
    from stream.ops.metrics import Metrics
    from stream.service.service import Service
    from stream.settings import Settings

    calls: list[object] = []

    class Stop(Exception):
        pass

    def consumer(settings: Settings) -> None:
        calls.append("consumer")
        raise Stop

    monkeypatch.setattr(heap, "keep_free_heap", lambda keep: calls.append(keep))
    monkeypatch.setattr(clients, "input_consumer", consumer)
    monkeypatch.setattr("stream.service.service.check_topics", lambda settings, durable_state: TopicFacts())
    service = Service(Settings(metrics_port=0, heap_keep_mb=64, durable_state=False),
                      Metrics(CollectorRegistry(), ["volume"]))
    with pytest.raises(Stop):
        service.run()
    assert calls == [64 << 20, "consumer"]
