"""Background snapshots (stream.state.forked): a forked child encodes the state as it was at the fork while
the parent goes on changing it; a child that fails, is killed or is cancelled is reported, never
waited for forever and never left behind."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from detectors.engine import Engine
from detectors.events import Event
from stream.errors import SnapshotError
from stream.state import snapshot
from stream.state.forked import CHILD_NICENESS, Forked

OFFSETS = {0: {"access": 42, "permission": 7}}


def _feed(engine: Engine, start: int, n: int) -> Engine:
    for i in range(start, start + n):
        engine.process(Event(kind="access", event_id=f"e{i}", ts=1.79e9 + i * 60, principal_id=f"u-{i % 40}",
                             action="read", resource_id=f"r{i % 3}", records=1 + i % 4))
    return engine


def _wait(forked: Forked, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not forked.done():
        assert time.monotonic() < deadline, "snapshot child did not exit"
        time.sleep(0.01)


def _reaped(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


class Slow:
    """Pickling this takes a minute: a child that is still encoding."""

    def __reduce__(self) -> Any:
        time.sleep(60)
        return (Slow, ())


def test_the_child_encodes_the_state_as_it_was_at_the_fork() -> None:
    engine = _feed(Engine(), 0, 30)
    at_fork = snapshot.encode_payload(engine, ["incident"])
    forked = Forked({0: (engine, ["incident"])}, OFFSETS, taken_at=123.0)
    _feed(engine, 30, 200)  # the loop goes on: 10 principals more, every profile changed
    _wait(forked)
    payloads = forked.payloads()
    assert payloads == {0: at_fork}
    assert at_fork != snapshot.encode_payload(engine, ["incident"])
    sealed = snapshot.seal(payloads[0], forked.offsets[0], 0, 1, b"k" * 32, "g")
    restored = snapshot.decode(snapshot.read_manifest(sealed.manifest, b"k" * 32), sealed.chunks)
    assert restored.n_principals() == 30 and engine.n_principals() == 40
    assert forked.taken_at == 123.0 and forked.child_max_rss_mb > 0
    assert 0 < forked.child_cpu_s < 60  # the child's own CPU time (pickling, compressing), not the parent's
    assert _reaped(forked.pid)


def test_several_partitions_come_back_each_under_its_own_number() -> None:
    engines = {p: _feed(Engine(), p * 100, 10 + p) for p in (0, 2, 5)}
    forked = Forked({p: (e, []) for p, e in engines.items()}, {}, taken_at=0.0)
    _wait(forked)
    payloads = forked.payloads()
    assert payloads == {p: snapshot.encode_payload(e, []) for p, e in engines.items()}


def test_a_child_that_fails_to_encode_is_an_error_not_an_empty_snapshot() -> None:
    forked = Forked({0: (Engine(), [lambda: None])}, OFFSETS, taken_at=0.0)  # lambdas do not pickle
    _wait(forked)
    with pytest.raises(SnapshotError, match="exit status 1"):
        forked.payloads()


def test_a_child_killed_by_the_oom_killer_is_reported_as_such() -> None:
    forked = Forked({0: (Engine(), [Slow()])}, OFFSETS, taken_at=0.0)
    # the child offers itself to the OOM killer, and takes a lower CPU priority, before it encodes anything
    adj = Path(f"/proc/{forked.pid}/oom_score_adj")
    lower = min(os.getpriority(os.PRIO_PROCESS, 0) + CHILD_NICENESS, 19)
    deadline = time.monotonic() + 30
    while adj.read_text().strip() != "1000" or os.getpriority(os.PRIO_PROCESS, forked.pid) != lower:
        assert time.monotonic() < deadline, "the child never raised its oom_score_adj and niceness"
        time.sleep(0.01)
    os.kill(forked.pid, signal.SIGKILL)  # what the kernel does to it at the memory limit
    _wait(forked)
    with pytest.raises(SnapshotError, match=f"killed by signal {int(signal.SIGKILL)}"):
        forked.payloads()


def test_cancel_kills_and_reaps_a_running_child() -> None:
    forked = Forked({0: (Engine(), [Slow()])}, OFFSETS, taken_at=0.0)
    assert not forked.done()
    forked.cancel()
    assert forked.done() and _reaped(forked.pid)
    forked.cancel()  # twice is harmless


# -- the service's use of it: offsets, changed partitions, failures, rebalances ---------------------


def _service() -> Any:
    from kafka import TopicPartition
    from prometheus_client import CollectorRegistry
    from test_snapshot import FakeTopic

    from stream.ops.metrics import Metrics
    from stream.service.service import Service
    from stream.settings import Settings
    from stream.state.store import StateStore

    service = Service(Settings(state_key="k" * 32), Metrics(CollectorRegistry(), []))
    del service.inputs[2:]  # as run() leaves out an authentication topic that does not exist
    topic = FakeTopic(partitions=2)
    service.attach(None, topic, StateStore(topic, topic.reader, topic.name, "grp", b"k" * 32))
    for p in (0, 1):
        _feed(service.partitions.engine(p), p * 1000, 20)
        service.checkpoint.store(TopicPartition(service.inputs[0], p), 19)
        service.checkpoint.store(TopicPartition(service.inputs[1], p), 4)
        service.snapshots.dirty.add(p)
    return service


def _restored(service: Any, p: int) -> tuple[Engine, dict[str, int]]:
    restored = service.snapshots.store.restore(p)
    return restored.engine, restored.offsets


def _blocked(service: Any, how: str) -> tuple[float, float]:
    """(count, sum) of privwatch_snapshot_blocked_seconds{how}."""
    get = service.metrics.registry.get_sample_value
    return (get("privwatch_snapshot_blocked_seconds_count", {"how": how}),
            get("privwatch_snapshot_blocked_seconds_sum", {"how": how}))


def _collect(service: Any) -> None:
    _wait(service.snapshots.forked)
    service.snapshots.collect_forked()
    assert service.snapshots.forked is None


def test_a_background_snapshot_records_the_offsets_and_state_of_the_fork() -> None:
    from kafka import TopicPartition

    service = _service()
    access = service.inputs[0]
    service.snapshots.snapshot_in_background(now=50.0)
    assert service.snapshots.forked is not None and service.snapshots.dirty == set()
    forked_blocked = service.snapshots.forked.blocked_s
    _feed(service.partitions.engine(0), 20, 30)  # the loop goes on with partition 0 meanwhile
    service.checkpoint.store(TopicPartition(access, 0), 49)
    service.snapshots.dirty.add(0)
    _collect(service)
    engine, offsets = _restored(service, 0)
    assert offsets == {access: 20, service.inputs[1]: 5}  # the next offsets at the fork, not now
    assert engine.n_principals() == 20 and service.partitions.engine(0).n_principals() == 40
    assert service.checkpoint.pending()[TopicPartition(access, 0)] == 20
    assert service.snapshots.dirty == {0}, "partition 0 changed after the fork: its next snapshot is still due"
    assert service.snapshots.times == {0: 50.0, 1: 50.0}
    assert service.metrics.registry.get_sample_value("privwatch_snapshots_total", {"outcome": "ok"}) == 2
    # one observation of the loop's time for the forked snapshot (its fork, then its write), none in the loop
    count, seconds = _blocked(service, "fork")
    assert count == 1 and 0 < forked_blocked < seconds and _blocked(service, "loop") == (0, 0)


def test_after_a_killed_child_the_next_snapshot_runs_in_the_loop() -> None:
    service = _service()
    service.snapshots.snapshot_in_background(now=1.0)
    os.kill(service.snapshots.forked.pid, signal.SIGKILL)
    _collect(service)
    assert service.snapshots.dirty == {0, 1} and service.snapshots.times == {}
    assert service.metrics.registry.get_sample_value("privwatch_snapshots_total", {"outcome": "failed"}) == 2
    assert service.snapshots.store.restore(0) is None  # nothing was written
    service.snapshots.snapshot_in_background(now=2.0)
    assert service.snapshots.forked is None, "the retry runs in the loop"
    assert _blocked(service, "loop")[0] == 1 and _blocked(service, "fork")[0] == 0
    assert service.snapshots.dirty == set() and service.snapshots.times == {0: 2.0, 1: 2.0}
    assert _restored(service, 1)[0].n_principals() == 20
    service.snapshots.snapshot_in_background(now=3.0)  # nothing changed since: no child at all
    assert service.snapshots.forked is None


def test_a_failed_fork_snapshots_the_same_state_in_the_loop_flushing_once(monkeypatch) -> None:
    from stream.service import snapshots

    def no_fork(*args: Any, **kwargs: Any) -> Forked:
        raise OSError(12, "Cannot allocate memory")

    monkeypatch.setattr(snapshots, "Forked", no_fork)
    service = _service()
    flushes = []
    flush = service.snapshots.flush
    service.snapshots.flush = lambda *a, **k: (flushes.append(1), flush(*a, **k))[1]
    service.snapshots.snapshot_in_background(now=4.0)
    assert service.snapshots.forked is None and service.snapshots.dirty == set()
    assert service.snapshots.times == {0: 4.0, 1: 4.0}
    assert len(flushes) == 2, "outputs once before taking the offsets, the snapshot once after sending"
    assert _restored(service, 0)[1] == {service.inputs[0]: 20, service.inputs[1]: 5}
    assert _blocked(service, "loop")[0] == 1 and _blocked(service, "fork")[0] == 0


def test_a_snapshot_in_the_loop_or_a_rebalance_cancels_a_running_child() -> None:
    service = _service()
    service.correlator.export = lambda p: [Slow()]
    service.snapshots.snapshot_in_background(now=1.0)
    child = service.snapshots.forked.pid
    service.correlator.export = lambda p: []
    service.snapshots.snapshot_all(now=2.0, only={1})  # e.g. on shutdown or for a revoked partition
    assert _reaped(child) and service.snapshots.forked is None
    assert service.snapshots.times == {1: 2.0} and service.snapshots.dirty == {0}
    service.correlator.export = lambda p: [Slow()]
    service.snapshots.dirty.add(1)
    service.snapshots.snapshot_in_background(now=3.0)
    child = service.snapshots.forked.pid
    service.ownership.revoke(set(), lost=True)
    assert _reaped(child) and service.snapshots.forked is None and service.snapshots.dirty == {0, 1}


def test_a_snapshot_in_the_loop_encodes_with_the_collector_paused() -> None:
    import gc

    from test_snapshot import _GC_SEEN, NotesGC

    service = _service()
    _GC_SEEN.clear()
    service.correlator.export = lambda p: [NotesGC()]
    service.snapshots.snapshot_all(now=1.0)
    assert _GC_SEEN == [("dump", False), ("dump", False)] and gc.isenabled()
    assert service.snapshots.times == {0: 1.0, 1: 1.0}
