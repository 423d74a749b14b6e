"""The speed tools' own correctness: ``bench_replay`` and ``bench_loop`` digests, and ``bench_loop
--per-detector``'s variants and arithmetic. Never asserts on speed."""

from __future__ import annotations

import orjson


def test_bench_replay_saves_and_checks_digests(tmp_path, capsys) -> None:
    from factories import lines, routine_then_bulk

    from stream.bench import replay as bench_replay

    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(lines(routine_then_bulk())) + b"\n")
    ref = tmp_path / "ref.json"
    assert bench_replay.main([str(events), "--save", str(ref)]) == 0
    saved = orjson.loads(ref.read_bytes())
    assert saved["alerts"] >= 1 and saved["findings"] >= saved["alerts"]
    assert bench_replay.main([str(events), "--check", str(ref)]) == 0
    ref.write_bytes(orjson.dumps({**saved, "findings_sha256": "0" * 64}))
    assert bench_replay.main([str(events), "--check", str(ref)]) == 1
    assert "DIFFERENT: findings_sha256" in capsys.readouterr().err


def test_bench_loop_runs_the_service_loop_deterministically(tmp_path, capsys) -> None:
    import gc

    from factories import lines, routine_then_bulk

    from stream.bench import loop as bench_loop
    from stream.ops.gctune import loop_gc

    records = [*lines(routine_then_bulk()), b"{not json", b""]
    first = bench_loop.run_loop(records, partitions=2)
    assert first["handled"] == len(records) and first["gc_us_per_event"] >= 0
    assert first["produced"] >= 3  # at least one alert and both dead letters
    thresholds = gc.get_threshold()
    with loop_gc(1_000):
        assert bench_loop.run_loop(records, partitions=2)["outputs_sha256"] == first["outputs_sha256"]
    assert gc.get_threshold() == thresholds
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(records[:-1]) + b"\n")
    assert bench_loop.main([str(events), "--partitions", "2", "--per-detector"]) == 0
    out = capsys.readouterr().out
    assert '"loop_overhead_us"' in out and '"alone_us"' in out


def test_bench_loop_per_detector_costs_each_detector_alone_and_the_suite(monkeypatch) -> None:
    from factories import lines, routine_then_bulk

    from detectors.registry import REGISTRY
    from stream.bench import loop as bench_loop

    records = lines(routine_then_bulk())
    real = bench_loop.detector_costs(records, partitions=2, rounds=1)
    assert set(real["alone_us"]) == set(REGISTRY)
    measured = (real["engine_us"], real["no_detectors_us"], real["shared_us"], *real["alone_us"].values())
    assert all(isinstance(v, float) for v in measured)

    # The arithmetic, with engines that take 0.5 µs per event of their own, 1 µs for each detector they
    # run (2 for multivariate), and 3 µs more for the whole suite; each variant's slowest round is 1 µs slower
    runs: list[list[str] | None] = []

    def fake_seconds(events, partitions, detectors=None):
        chosen = list(REGISTRY) if detectors is None else detectors
        us = 0.5 + sum(2 if name == "multivariate" else 1 for name in chosen) + (3 if detectors is None else 0)
        us += 1 if detectors not in runs else 0
        runs.append(detectors)
        return 1e-6 * len(records) * us

    monkeypatch.setattr(bench_loop, "_engine_seconds", fake_seconds)
    costs = bench_loop.detector_costs(records, partitions=2, rounds=2)
    assert len(runs) == 2 * (2 + len(REGISTRY))
    assert [len(r) for r in runs[2:2 + len(REGISTRY)]] == [1] * len(REGISTRY)  # type: ignore[arg-type]
    assert costs["engine_us"] == len(REGISTRY) + 1 + 3.5 and costs["no_detectors_us"] == 0.5
    assert costs["alone_us"] == {name: 2.0 if name == "multivariate" else 1.0 for name in REGISTRY}
    assert costs["shared_us"] == 3.0
