"""The short table ``privwatch bench`` prints from its result (the JSON file holds everything)."""

from __future__ import annotations

from typing import Any

from stream.bench import stages as bench_stages


def _fastest(runs: dict[str, Any]) -> str:
    """A variant's rate, and the runs it is the fastest of.

    >>> _fastest({"events_per_s": 3.0, "runs_events_per_s": [2.0, 3.0]})
    '3 events/s (fastest of 2, 3)'
    """
    each = ", ".join(f"{x:,.0f}" for x in runs["runs_events_per_s"])
    return f"{runs['events_per_s']:,.0f} events/s (fastest of {each})"


def _in_memory_row(mem: dict[str, Any]) -> str:
    return (f"{mem['events_per_s']:,.0f} events/s ({mem['us_per_event']:.1f} us per event; apart: decode "
            f"{mem['decode_us']:.1f}, engines {mem['engine_us']:.1f}): (b)'s ceiling without kafka-python")


def _share(x: float | None) -> str:
    return "?" if x is None else f"{x:.0%}"


def _machine_row(machine: dict[str, Any]) -> str:
    """The table's line for the whole machine's CPU use over the latency window.

    >>> _machine_row({"cpus": 2, "cpus_busy": 1.62, "cpus_stolen": 0.0})
    '1.62 of 2 CPUs busy (0.00 stolen by the hypervisor): the broker, the load generator and the service'
    >>> _machine_row({})
    'unknown (no /proc/stat)'
    """
    if not machine:
        return "unknown (no /proc/stat)"
    return (f"{machine['cpus_busy']:.2f} of {machine['cpus']} CPUs busy ({machine['cpus_stolen']:.2f} stolen by the "
            "hypervisor): the broker, the load generator and the service")


def _slowest_row(worst: dict[str, Any]) -> str:
    """The table's line for the second of the latency window with the slowest probe.

    >>> _slowest_row({"t": 7.0, "probe_max_ms": 364.0, "service": 0.6, "others": 1.32,
    ...               "median": {"service": 0.72, "others": 0.66}})
    'probes up to 364 ms at 7 s: the service 0.60 of a core, the rest of the machine 1.32 CPUs (medians 0.72, 0.66)'
    >>> _slowest_row({"t": 3.0, "probe_max_ms": 120.0, "service": 0.7, "others": 0.7,
    ...               "median": {"service": 0.7, "others": 0.7}, "snapshot": True})[-41:]
    '(medians 0.70, 0.70); a snapshot ran then'
    >>> _slowest_row({})
    'unknown'
    """
    if not worst:
        return "unknown"

    def cpu(x: float | None) -> str:
        return "?" if x is None else f"{x:.2f}"

    median = worst["median"]
    return (f"probes up to {worst['probe_max_ms']:.0f} ms at {worst['t']:.0f} s: the service {cpu(worst['service'])} "
            f"of a core, the rest of the machine {cpu(worst['others'])} CPUs (medians {cpu(median['service'])}, "
            f"{cpu(median['others'])})" + ("; a snapshot ran then" if worst.get("snapshot") else ""))


def _hold_row(hold: dict[str, int]) -> str:
    """The table's line for how long records waited in the service's event-time merge.

    >>> _hold_row({"sampled": 34_000, "over_100ms": 12, "over_500ms": 0})
    "12 of 34,000 sampled records waited over 100 ms for their partition's other topic, 0 over 500 ms"
    >>> _hold_row({})
    'not measured'
    """
    if not hold:
        return "not measured"
    return (f"{hold['over_100ms']:,} of {hold['sampled']:,} sampled records waited over 100 ms for their "
            f"partition's other topic, {hold['over_500ms']:,} over 500 ms")


def _stages_row(stages: dict[str, Any]) -> str:
    """The table's line splitting the probes' latency at their records' timestamps.

    >>> _stages_row({"probes": 2, "generator": {"p50": 5.0, "p99": 9.0, "max": 9.0},
    ...              "service": {"p50": 40.0, "p99": 480.0, "max": 480.0},
    ...              "delivery": {"p50": 10.0, "p99": 20.0, "max": 20.0},
    ...              "slowest": {"total": 509.0, "generator": 9.0, "service": 480.0, "delivery": 20.0}})
    'p50 / p99 ms: generator 5 / 9, service 40 / 480, delivery 10 / 20; the slowest probe 9 + 480 + 20 ms'
    >>> _stages_row({})
    'not measured (no probe with all its timestamps)'
    """
    if not stages:
        return "not measured (no probe with all its timestamps)"
    parts = ", ".join(f"{s} {stages[s]['p50']:.0f} / {stages[s]['p99']:.0f}" for s in bench_stages.STAGES)
    slowest = " + ".join(f"{stages['slowest'][s]:.0f}" for s in bench_stages.STAGES)
    return f"p50 / p99 ms: {parts}; the slowest probe {slowest} ms"


def _caution_row(lat: dict[str, Any]) -> list[tuple[str, str]]:
    """Why the latency above is not the service's own, if it is not.

    >>> _caution_row({"rate_events_per_s": 100.0, "error": "RuntimeError: no kafka-tools jar"})
    [('    error', 'the latency phase failed: RuntimeError: no kafka-tools jar')]
    >>> slow = {"rate_events_per_s": 100.0, "achieved_rate_events_per_s": 80.0, "generator_kept_up": False}
    >>> _caution_row(slow)[0][1][:45]
    'the load generator sent only 80% of the rate:'
    >>> _caution_row({"rate_events_per_s": 100.0, "achieved_rate_events_per_s": 99.0, "generator_kept_up": True})
    []
    """
    if "error" in lat:  # the phase stopped before it measured anything (it has no achieved rate)
        return [("    error", f"the latency phase failed: {lat['error']}")]
    if lat.get("generator_kept_up", True):
        return []
    share = lat["achieved_rate_events_per_s"] / lat["rate_events_per_s"]
    return [("    caution", f"the load generator sent only {share:.0%} of the rate: it ran out of CPU (its own "
                           "core, or the machine's), so this latency is not the service's alone")]


def _catchup_rows(c: dict[str, Any]) -> list[tuple[str, str]]:
    """The table's lines for (f): the cold service against the tuned bare consumer, start-up included.

    >>> c = {"events": 500_000, "partitions": 2, "ratio": 0.309, "target": 0.5,
    ...      "service": {"events_per_s": 20_100.0, "start_s": 2.8, "runs_seconds": [24.9, 26.0]},
    ...      "bare": {"events_per_s": 64_900.0, "start_s": 1.1, "runs_seconds": [7.7, 8.1]}}
    >>> for row in _catchup_rows(c):
    ...     print(row[1])
    ratio 0.309 (target >= 0.5) over 500,000 events on 2 partitions, start-up included
    20,100 / 64,900 events/s (first event after 2.8 / 1.1 s; fastest of 2 runs each)
    """
    service, bare = c["service"], c["bare"]
    return [("(f) catch-up from cold", f"ratio {c['ratio']:.3f} (target >= {c['target']}) over {c['events']:,} "
                                       f"events on {c['partitions']} partitions, start-up included"),
            ("    service / tuned bare", f"{service['events_per_s']:,.0f} / {bare['events_per_s']:,.0f} events/s "
                                         f"(first event after {service['start_s']:.1f} / {bare['start_s']:.1f} s; "
                                         f"fastest of {len(service['runs_seconds'])} runs each)")]


def table(r: dict[str, Any]) -> str:
    lat, state = r["latency"], r["state"]
    rows = [
        ("(a) bare kafka-python + orjson", _fastest(r["bare"])),
        ("(a') the same, tuned as (b)", _fastest(r["bare_tuned"]) + " (with the service's collector and allocator "
                                                                  "settings)"),
        ("(b0) privwatch, no detectors", _fastest(r["floor"])),
        ("    ratio to (a)", f"{r['floor_ratio']:.3f} (decode, merge, offsets, metrics: the ceiling of (b))"),
        ("(b) privwatch, all detectors", _fastest(r["pipeline"])),
        ("    second half alone", f"{r['pipeline'].get('second_half_events_per_s', 0):,.0f} events/s "
                                "(past the history's baseline weeks)"),
        ("    merge waits", f"{r['pipeline'].get('merge_timeouts', 0):,} records released after a merge wait "
                          "in the fastest run (reading a backlog)"),
        ("    in memory, no Kafka", _in_memory_row(r["in_memory"])),
        ("CPU per event (busy)", " / ".join(f"{r[k]['cpu_us_per_event']:.1f} us ({r[k]['cpu_busy']:.0%})"
                                            for k in ("bare", "bare_tuned", "floor", "pipeline"))
                                 + "  for (a) / (a') / (b0) / (b)"),
        ("ratio (b)/(a)", f"{r['ratio']:.3f}  (target >= 0.5; fastest runs; of the median runs "
                          f"{r.get('ratio_of_medians', float('nan')):.3f})"),
        ("ratio (b)/(a')", f"{r['ratio_to_tuned_bare']:.3f}  (against the bare consumer given the service's "
                           "process settings)"),
        ("(c) latency at rate", f"{lat.get('rate_events_per_s', 0):,.0f} events/s requested, "
                                f"{lat.get('achieved_rate_events_per_s', 0):,.0f} achieved "
                                f"(by {lat.get('generator', '?')}), {lat.get('alerts', 0):,} alerts in all; "
                                f"the service busy {_share(lat.get('service_cpu_busy'))} of the window; "
                                f"{lat.get('merge_timeouts', 0):,} records released after a merge wait"),
        ("    merge holds", _hold_row(lat.get("merge_hold") or {})),
        ("    the machine meanwhile", _machine_row(lat.get("machine") or {})),
        ("    p50 / p99 / max", f"{lat.get('p50_ms', float('nan')):.0f} / {lat.get('p99_ms', float('nan')):.0f} / "
                                f"{lat.get('max_ms', float('nan')):.0f} ms  (target p99 <= 500 ms; "
                                f"{lat.get('probe_alerts_received', 0)}/{lat.get('probes_sent', 0)} probes)"),
        ("    where the time went", _stages_row(lat.get("stages_ms") or {})),
        ("    slowest second", _slowest_row(lat.get("slowest_second") or {})),
        *_caution_row(lat),
        ("(d) state per principal", f"{state['state_bytes_per_principal']:,.0f} bytes at {state['principals']:,} "
                                    f"principals ({state['source']}; target <= 4096)"),
        ("    checkpoint of them", f"loop time per poll p99 {state['stall_p99_ms']:.0f} ms (max "
                                 f"{state['stall_max_ms']:.0f} ms, target p99 <= 50 ms) over "
                                 f"{state['checkpoint_polls']:,} polls; restore {state['restore_s']:.1f} s "
                                 f"({state['restore_cpu_s']:.1f} CPU s)"),
        ("(e) peak RSS", f"{r['service_peak_rss_mb']:,.0f} MB the service in (b) and (c); {r['peak_rss_mb']:,.0f} MB "
                         "the bench's own process, with (d)"),
        *_catchup_rows(r["catchup"]),
        ("load average", " ".join(f"{x:.2f}" for x in r["load_average"]["before"]) + " -> "
                         + " ".join(f"{x:.2f}" for x in r["load_average"]["after"])
                         + f" on {r['load_average']['cpus']} CPUs"),
        ("crc32c (C) used by kafka-python", str(r["crc32c"]["used_by_kafka_python"])),
        ("detectors", r.get("detectors", "?")),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
