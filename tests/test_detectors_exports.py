"""Export detectors on hand-built streams: bulk volume against the principal, its peers and the
resource; slow exfiltration over days and on days off; the export mix; peer-shift damping."""

from __future__ import annotations

from dataclasses import replace

from detector_streams import DAY, HOUR, T0, access, last_of, pages, routine, run_engine

from detectors.base import Profile
from detectors.events import Event


def slow_pages(events: list[Event], **params: int) -> list[dict]:
    """fi-000's slow-exfiltration pages over ``events``, with these detector parameters."""
    alerts = run_engine(events, detector_params={"slow_exfiltration": params})
    return pages(alerts, "fi-000", "slow_exfiltration")


def test_slow_exfiltration_pages_on_a_rising_week() -> None:
    """One more export a day on top of the routine, each of an ordinary size: no single export
    stands out, but exports outgrow what the principal's other work explains, day after day."""
    base = routine(seed=9, days=24)
    who = last_of(base, "fi-000")
    extra = []
    for k, day in enumerate((14, 15, 18, 19, 20, 21)):  # weekdays (T0 is a Thursday)
        for j in range(k + 1):
            ts = T0 + day * DAY + 10 * HOUR + j * 1200
            extra.append(
                access(who, f"se{k}-{j}", ts, action="export", records=700, resource_id="finance.invoices")
            )
    alerts = run_engine(sorted([*base, *extra], key=lambda e: e.ts))
    assert pages(alerts, "fi-000", "slow_exfiltration")
    assert not pages(run_engine(base), detector="slow_exfiltration")


def test_slow_exfiltration_needs_a_handful_of_exports_on_the_day_it_pages() -> None:
    """A principal that never exports: three exports a day for a week pile up a surplus against a
    usual share of 0%, but a few a day are anyone's noise; four a day page."""
    base = [replace(e, action="read") if e.principal_id == "fi-000" and e.action == "export" else e
            for e in routine(seed=9, days=24)]
    who = last_of(base, "fi-000")

    def with_exports(per_day: int) -> list[Event]:
        return [*base, *(access(who, f"x{day}-{j}", T0 + day * DAY + 10 * HOUR + j * 1200, action="export",
                                records=700, resource_id="finance.invoices")
                         for day in (14, 15, 18, 19, 20, 21, 22) for j in range(per_day))]

    assert slow_pages(with_exports(3), min_today_exports=1)  # what paged before the floor
    assert not slow_pages(with_exports(3))
    assert slow_pages(with_exports(4))


def test_slow_exfiltration_pages_exports_of_one_table_on_days_off() -> None:
    """A weekend of nothing but exports of one table, by a principal that never works weekends,
    pages; the same exports on a weekend of work, or on a single day, do not."""
    base = routine(seed=9, days=24)
    who = last_of(base, "fi-000")

    def weekend(counts: tuple[int, int], with_reads: bool = False) -> list[Event]:
        out = []
        for day, n in zip((16, 17), counts, strict=True):  # a Saturday and a Sunday (T0 is a Thursday)
            for j in range(n):
                ts = T0 + day * DAY + 10 * HOUR + j * 1200
                out.append(access(who, f"wk{day}-{j}", ts, action="export", records=700,
                                  resource_id="finance.invoices"))
                if with_reads:
                    out.append(access(who, f"wr{day}-{j}", ts - 600, action="read", resource_id="finance.ledger"))
        return out

    found = slow_pages([*base, *weekend((2, 2))])
    assert found and found[0]["level"] == "medium"
    assert found[0]["evidence_event_ids"][-1] == "wk17-1"  # the fourth export of the weekend
    assert not slow_pages([*base, *weekend((2, 2), with_reads=True)])
    assert not slow_pages([*base, *weekend((3, 0))])


def test_slow_exfiltration_counts_a_table_taken_on_days_off_as_concentrated() -> None:
    """A principal that only ever exports one table cannot concentrate on it any further; one export
    on a Saturday and two on a Sunday (below the days-off bar), then a week of five a day: the
    weekend says the table is being taken, so the run pages."""
    base = [replace(e, resource_id="finance.invoices") if e.principal_id == "fi-000" and e.action == "export"
            else e for e in routine(seed=9, days=24)]
    who = last_of(base, "fi-000")
    extra = [access(who, f"w{day}-{j}", T0 + day * DAY + 11 * HOUR + j * 1200, action="export", records=900,
                    resource_id="finance.invoices")
             for day, n in ((16, 1), (17, 2), (18, 5), (19, 5), (20, 5), (21, 5), (22, 5)) for j in range(n)]

    run_only = {"window_z": 10**9}  # the daily-surplus run alone, without the steady-extra test
    assert not slow_pages([*base, *extra], off_day_lift_waiver=0, **run_only)  # the same mix as ever: held back
    found = slow_pages([*base, *extra], **run_only)
    assert found and "exports out of proportion" in found[0]["title"].lower()
    # the steady extra over the week sees it without the weekend: its test waives concentration for a
    # principal that exports one table only
    steady = slow_pages([*base, *extra], off_day_lift_waiver=0)
    assert steady and "steady extra" in steady[0]["title"].lower()


def test_volume_judges_an_export_against_the_resource_it_comes_from() -> None:
    """6x this principal's usual export, but the table's exports by everyone are usually that big:
    no finding; far above both, a finding."""
    from detectors.base import Profile
    from detectors.volume import Volume

    vol, prof = Volume(), Profile(first_ts=0.0, last_ts=0.0, peer_group="sales/analyst")
    others = Profile(first_ts=0.0, last_ts=0.0, peer_group="data/engineer")

    def export(pid: str, i: int, records: int, resource: str) -> Event:
        return Event(kind="access", event_id=f"{pid}-{i}", ts=T0 + i, principal_id=pid, action="export",
                     records=records, resource_id=resource)

    for i in range(60):
        vol.learn_one(export("u", i, 900 + 10 * (i % 7), "crm.small"), prof)
        vol.learn_one(export("big", i, 4_000 + 1_500 * (i % 7), "crm.big"), others)
    assert vol.score_one(export("u", 99, 6_000, "crm.big"), prof) is None
    assert vol.score_one(export("u", 99, 6_000, "crm.small"), prof) is not None
    assert vol.score_one(export("u", 99, 400_000, "crm.big"), prof) is not None


def test_volume_reports_the_heavy_tail_and_pages_an_order_of_magnitude_above_it() -> None:
    """Exports several times the usual top are ordinary heavy-tailed work: a finding capped below
    paging; an export far above the usual top (or the typical size) may page."""
    from detectors.base import Profile
    from detectors.calibrate import PAGING_LEVELS, level_for
    from detectors.volume import Volume

    vol, prof = Volume(), Profile(first_ts=0.0, last_ts=0.0, peer_group="sales/analyst")
    for i in range(60):
        e = Event(kind="access", event_id=f"e{i}", ts=T0 + i, principal_id="u", action="export",
                  records=800 + 150 * (i % 9), resource_id="crm.t")
        vol.learn_one(e, prof)

    def finding(records: int):  # type: ignore[no-untyped-def]
        e = Event(kind="access", event_id="x", ts=T0 + 99, principal_id="u", action="export", records=records,
                  resource_id="crm.t")
        return vol.score_one(e, prof)

    tail = finding(12_000)
    assert tail is not None and level_for(tail.max_severity) not in PAGING_LEVELS
    bulk = finding(200_000)
    assert bulk is not None and level_for(bulk.max_severity) in PAGING_LEVELS


def test_volume_pages_a_huge_export_even_when_sizes_spread_widely() -> None:
    """A first-time exporter judged against peers whose export sizes span orders of magnitude: the
    log-scale z-score of an export 500 times the typical one stays modest, but it is huge by ratio
    and pages; one 20 times the typical size stays quiet."""
    import random

    from detectors.base import Profile
    from detectors.volume import Volume

    rng = random.Random(3)
    vol, prof = Volume(), Profile(first_ts=0.0, last_ts=0.0, peer_group="sales/analyst")
    for i in range(400):  # peers: typical ~400 records, spread over two orders of magnitude
        e = Event(kind="access", event_id=f"p{i}", ts=T0 + i, principal_id=f"peer{i % 20}", action="export",
                  records=int(400 * rng.lognormvariate(0.0, 1.4)), resource_id=f"crm.t{i % 7}")
        vol.learn_one(e, prof)
    for i in range(30):  # the principal reads, never exported
        vol.learn_one(Event(kind="access", event_id=f"r{i}", ts=T0 + 500 + i, principal_id="u", action="read",
                            records=2, resource_id="crm.t0"), prof)

    def finding(records: int):  # type: ignore[no-untyped-def]
        e = Event(kind="access", event_id="x", ts=T0 + 999, principal_id="u", action="export", records=records,
                  resource_id="crm.accounts")
        return vol.score_one(e, prof)

    huge = finding(200_000)
    assert huge is not None and huge.min_severity >= 50 and huge.max_severity >= 50
    assert finding(8_000) is None


def test_export_mix_is_bounded_and_keeps_what_matters() -> None:
    """At most CAP resources per principal: a new one replaces the least exported, counts move from
    today to the recent days to before as days close."""
    from detectors.export_mix import ExportMix

    mix = ExportMix()
    for _day in range(ExportMix.RECENT + 2):
        for _ in range(5):
            mix.add("t.main")
        mix.close_day()
    for i in range(3 * ExportMix.CAP):
        mix.add(f"t.once-{i}")
    assert len(mix.resources) == ExportMix.CAP and "t.main" in mix.resources
    share, before, top, n_top, n_all = mix.concentration()
    assert (top, n_top, round(before, 2)) == ("t.main", 5 * (ExportMix.RECENT - 1), 1.0)


def test_a_peer_group_shift_damps_a_big_export_but_not_one_a_hundred_times_the_usual() -> None:
    """While the drift detector says the whole peer group is shifting, a volume finding is damped to
    a report, unless it is far beyond what any shift explains (``beyond_shift``)."""
    from detectors.base import Detector, Finding
    from detectors.calibrate import PAGING_LEVELS
    from detectors.engine import Engine, EngineConfig
    from detectors.volume import Volume

    class AlwaysShifting(Detector):
        name = "drift"

        def score_one(self, event: Event, profile: Profile) -> None:
            return None

        def learn_one(self, event: Event, profile: Profile, flagged: bool = False) -> None:
            pass

        def note_finding(self, finding: Finding, profile: Profile) -> None:
            pass

        def is_peer_shift(self, finding: Finding, profile: Profile) -> bool:
            return True

    def levels(records: int) -> list[str]:
        engine = Engine(EngineConfig(warmup_days=0.0), detectors=[AlwaysShifting(), Volume()])
        for i in range(60):
            engine.process(Event(kind="access", event_id=f"e{i}", ts=T0 + i * 3600, principal_id="u",
                                 action="export", records=400 + 40 * (i % 9), resource_id="crm.t"))
        big = Event(kind="access", event_id="big", ts=T0 + 61 * 3600, principal_id="u", action="export",
                    records=records, resource_id="crm.t")
        return [a["level"] for a in engine.process(big)]

    damped = levels(15_000)  # ~25x the typical size: a shift could explain it
    assert damped and damped[0] not in PAGING_LEVELS
    extreme = levels(200_000)  # ~400x the typical size
    assert extreme and extreme[0] in PAGING_LEVELS
