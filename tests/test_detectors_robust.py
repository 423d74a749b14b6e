"""Hand-built scenarios for detection that holds on organisations privwatch was not tuned on (issue 31):
own history before resource norms, peer normality as a share over a window, dormancy relative to the
principal's own rhythm, a moderate exporter's steady extra. Each mechanism has an incident that must
page through the Engine and a benign twin that must not."""

from __future__ import annotations

import pytest
from detector_streams import DAY, HOUR, T0, access, last_of, pages, routine, run_engine

from detectors.events import Event
from detectors.peers import PeerTouches

DAYS = 12
NOW = T0 + DAYS * DAY + 10 * HOUR  # a Tuesday morning after the routine
MINORS = {"resource_id": "legal.minors_consent", "sensitivity": "restricted", "categories": ("minors", "pii.contact"),
          "action": "read", "records": 3}


@pytest.fixture(scope="module")
def base() -> list[Event]:
    return routine(seed=11, days=DAYS)


# -- peer normality is a share of peers over a window, not existence -----------------------------------

def test_one_peers_single_touch_does_not_make_special_data_normal(base: list[Event]) -> None:
    """One of four HR partners read minors' data once, early on (a quarter of the team: "peers do it"
    by a share alone); a second partner's first touch pages."""
    once = access(last_of(base, "hr-001"), "peer-once", T0 + 1 * DAY + 11 * HOUR, **MINORS)
    touch = access(last_of(base, "hr-002"), "minors", NOW, **MINORS)
    alerts = pages(run_engine([*base, once, touch]), "hr-002", "novelty")
    assert alerts and "1 of ~4 peers" in alerts[0]["reasons"][0]


def test_special_data_half_the_peers_use_is_normal_for_the_next_one(base: list[Event]) -> None:
    """Half the analysts read it every few days, since before privwatch watched: the next one's first
    touch is ordinary."""
    team = [
        access(last_of(base, f"fi-00{i}"), f"team-{i}-{d}", T0 + d * DAY + (10 + i) * HOUR, **MINORS)
        for i in range(3) for d in (1, 4, 7, 8, 11)
    ]
    touch = access(last_of(base, "fi-004"), "minors", NOW, **MINORS)
    assert pages(run_engine([*base, *team, touch]), detector="novelty") == []


def test_data_shared_across_teams_is_not_paged_but_a_teams_own_is_reported(base: list[Event]) -> None:
    """Invoices are read by people of four departments: a support agent's first read is ordinary
    cross-team work. HR's employee table is HR's alone: a support agent's first read is reported."""
    shared = []
    for k, dept in enumerate(("hr", "legal", "sales", "marketing")):
        who = Event(kind="access", event_id="", ts=0.0, principal_id=f"{dept[:2]}-x{k}", department=dept,
                    role="analyst", ip=f"10.9.{k}.1", country="GB", device_id=f"lt-x{k}", user_agent="Mozilla/5.0")
        shared += [access(who, f"sh-{k}-{d}", T0 + d * DAY + 14 * HOUR, resource_id="finance.invoices",
                          sensitivity="restricted", categories=("pii.financial",), action="read", records=2)
                   for d in range(4, 11)]
    agent = last_of(base, "su-001")
    invoices = access(agent, "inv", NOW, resource_id="finance.invoices", sensitivity="restricted",
                      categories=("pii.financial",), action="read", records=2)
    assert pages(run_engine([*base, *shared, invoices]), detector="novelty") == []
    employees = access(agent, "emp", NOW, resource_id="hr.employees", sensitivity="restricted",
                       categories=("pii.hr",), action="read", records=2)
    assert [a for a in run_engine([*base, *shared, employees]) if a["detector"] == "novelty"]


def test_peer_touches_merge_like_one_engine() -> None:
    """Two partitions' aggregates added up equal one engine's: members live in one partition each."""
    one, left, right = PeerTouches(), PeerTouches(), PeerTouches()
    for member, day in enumerate((100, 101, 108, 109)):
        for g in (one, left if member % 2 else right):
            g.join("peer:x")
            g.touch("peer:x", 42, day, -1)
    left.merge(right)
    assert (left.size("peer:x"), left.recent("peer:x", 42, 110)) == (one.size("peer:x"), one.recent("peer:x", 42, 110))
    assert left.items == one.items


# -- own history first: snooping judged by the person, not by its busiest peers --------------------------

def _lookups(who: Event, tag: str, start: float, n: int, span: float) -> list[Event]:
    return [access(who, f"{tag}{i}", start + i * span / n, action="read", records=1, subjects=1,
                   resource_id="customers.profile", sensitivity="restricted", categories=("pii.contact",),
                   subject_refs=(f"{tag}-{i}",)) for i in range(n)]


@pytest.fixture(scope="module")
def heavy_peers(base: list[Event]) -> list[Event]:
    """Three agents who look up about 250 customers every working day: the team's usual top is high."""
    out: list[Event] = []
    for k in range(3):
        who = Event(kind="access", event_id="", ts=0.0, principal_id=f"su-h{k}", department="support", role="agent",
                    ip=f"10.8.{k}.1", country="GB", device_id=f"lt-h{k}", user_agent="Mozilla/5.0")
        for d in range(DAYS):
            if (d + 3) % 7 < 5:
                out += _lookups(who, f"h{k}-{d}-", T0 + d * DAY + 9 * HOUR, 250, 8 * HOUR)
    return out


def test_snooping_pages_though_peers_look_up_that_many(base: list[Event], heavy_peers: list[Event]) -> None:
    snoop = _lookups(last_of(base, "su-002"), "sn", NOW, 200, 5 * HOUR)
    alerts = pages(run_engine([*base, *heavy_peers, *snoop]), "su-002", "subjects")
    assert alerts and "distinct data subjects" in alerts[0]["reasons"][0]


def test_a_heavy_agents_busy_day_does_not_page(base: list[Event], heavy_peers: list[Event]) -> None:
    busy = _lookups(heavy_peers[0], "busy", NOW, 375, 9 * HOUR)  # one and a half usual days
    assert pages(run_engine([*base, *heavy_peers, *busy]), detector="subjects") == []


def test_a_paged_snoop_does_not_page_again_the_next_morning(base: list[Event]) -> None:
    who = last_of(base, "su-003")
    snoop = _lookups(who, "sn", NOW, 400, 2 * HOUR)
    morning = [access(who, f"m{i}", NOW + 22 * HOUR + i * 300, action="read", records=1, subjects=1,
                      subject_refs=(f"usual-{i}",)) for i in range(5)]
    alerts = [a for a in run_engine([*base, *snoop, *morning]) if a["principal_id"] == "su-003"]
    assert pages(alerts) and all(a["ts"] < "2026-10-14" for a in alerts)


# -- own history first: a bulk export judged by the person, not by the table's heavy users -------------

EMPLOYEES = {"resource_id": "hr.employees", "sensitivity": "restricted", "categories": ("pii.hr",), "action": "export"}


@pytest.fixture(scope="module")
def heavy_exports(base: list[Event]) -> list[Event]:
    """An HR partner exports about 20,000 employee records every working day (a payroll sync), and a
    finance analyst exports a few hundred invoices twice a day."""
    hr, fi = last_of(base, "hr-000"), last_of(base, "fi-001")
    weekdays = [d for d in range(DAYS) if (d + 3) % 7 < 5]
    sync = [access(hr, f"sync-{d}", T0 + d * DAY + 16 * HOUR, records=15_000 + 1_000 * (d % 7), **EMPLOYEES)
            for d in weekdays]
    invoices = [access(fi, f"inv-{d}-{k}", T0 + d * DAY + (11 + 4 * k) * HOUR, action="export",
                       records=200 + 60 * ((d * 3 + k * 5) % 5), resource_id="finance.invoices",
                       sensitivity="confidential", categories=("pii.financial",)) for d in weekdays for k in (0, 1)]
    return sync + invoices


def test_bulk_export_of_a_table_never_exported_pages_though_others_export_that_much(
    base: list[Event], heavy_exports: list[Event],
) -> None:
    """A finance analyst whose exports are a few hundred records exports 12,000 employee records
    (about 40x its typical export) from a restricted table it never exported."""
    bulk = access(last_of(base, "fi-001"), "bulk", NOW, records=12_000, **EMPLOYEES)
    alerts = pages(run_engine([*base, *heavy_exports, bulk]), "fi-001", "volume")
    assert alerts and "never exported" in alerts[0]["reasons"][0]
    assert alerts[0]["baseline"]["observed_records"] == 12_000  # the triage chart's observed bar


def test_a_large_export_within_the_persons_own_tail_does_not_page(
    base: list[Event], heavy_exports: list[Event],
) -> None:
    """The same analyst exports 2,500 invoices (a table it exports every day), a few times its usual."""
    large = access(last_of(base, "fi-001"), "large", NOW, action="export", records=2_500,
                   resource_id="finance.invoices", sensitivity="confidential", categories=("pii.financial",))
    assert pages(run_engine([*base, *heavy_exports, large]), detector="volume") == []


# -- dormancy relative to the principal's own rhythm, weighted by what it touches on waking --------------

PAYROLL = {"resource_id": "finance.payroll", "sensitivity": "restricted", "categories": ("pii.hr", "pii.financial"),
           "action": "read", "records": 40}


@pytest.fixture(scope="module")
def month() -> list[Event]:
    """Four weeks in which analyst fi-003 works every working day until day 9, then falls silent."""
    events = routine(seed=3, days=28, depts=(("finance", "analyst", 6), ("hr", "partner", 3)), per_day=20)
    return [e for e in events if e.principal_id != "fi-003" or e.ts < T0 + 9 * DAY]


def test_a_daily_worker_silent_two_weeks_reading_payroll_at_night_pages(month: list[Event]) -> None:
    wake = T0 + 23 * DAY + 1 * HOUR  # 01:00, a time it never works, from its own laptop and office
    night = [access(last_of(month, "fi-003"), f"w{i}", wake + i * 300, **PAYROLL) for i in range(4)]
    alerts = pages(run_engine([*month, *night]), "fi-003", "dormancy")
    assert alerts and "never works" in alerts[0]["reasons"][1]


def test_the_same_silence_then_the_usual_work_is_a_return_from_leave(month: list[Event]) -> None:
    usual = last_of(month, "fi-003")  # its own table, at its usual hours, from its own laptop
    back = [access(usual, f"b{i}", T0 + 23 * DAY + 10 * HOUR + i * 600) for i in range(6)]
    alerts = [a for a in run_engine([*month, *back]) if a["detector"] == "dormancy"]
    assert alerts and not pages(alerts) and "nothing" in alerts[0]["reasons"][1]


def test_silence_is_judged_by_the_principals_own_rhythm(month: list[Event]) -> None:
    """A partner whose work comes in pairs of days ten days apart is not dormant after fourteen silent
    days (a daily worker would be)."""
    hr = last_of(month, "hr-002")
    rare = [e for e in month if e.principal_id != "hr-002" or int((e.ts - T0) // DAY) in (0, 1, 11, 12)]
    late = [access(hr, f"r{i}", T0 + 26 * DAY + 2 * HOUR + i * 300, **PAYROLL) for i in range(3)]
    assert [a for a in run_engine([*rare, *late]) if a["detector"] == "dormancy"] == []


# -- a slow-exfiltration channel that sees a moderate exporter's steady extra ------------------------------

def _exports(who: Event, tag: str, days: range, per_day: int, tables: tuple[str, ...]) -> list[Event]:
    return [access(who, f"{tag}{d}-{j}", T0 + d * DAY + (10 + j) * HOUR, action="export", records=300,
                   resource_id=tables[(d + j) % len(tables)], sensitivity="confidential")
            for d in days if (d + 3) % 7 < 5 for j in range(per_day)]


@pytest.fixture(scope="module")
def exporter() -> list[Event]:
    """Six weeks of analyst fi-001 exporting one invoice or ledger table a working day besides its reads."""
    events = [e for e in routine(seed=4, days=42, depts=(("finance", "analyst", 6),), per_day=20)
              if e.principal_id != "fi-001" or e.action != "export"]
    return events + _exports(last_of(events, "fi-001"), "u", range(42), 1, ("finance.invoices", "finance.ledger"))


def test_a_moderate_exporters_steady_extra_of_one_table_pages(exporter: list[Event]) -> None:
    """Two more exports of the invoices every working day for a fortnight: no day stands out (three
    exports a day; the daily-surplus run needs four), the fortnight does."""
    extra = _exports(last_of(exporter, "fi-001"), "x", range(28, 42), 2, ("finance.invoices",))
    alerts = pages(run_engine([*exporter, *extra]), "fi-001", "slow_exfiltration")
    assert alerts and "Steady extra" in alerts[0]["title"]
    run_only = run_engine([*exporter, *extra], detector_params={"slow_exfiltration": {"window_z": 10**9}})
    assert pages(run_only, detector="slow_exfiltration") == []


def test_a_busy_week_across_the_usual_tables_does_not_page(exporter: list[Event]) -> None:
    """The same extra exports, but spread over the tables the analyst always exports: a busy week."""
    extra = _exports(last_of(exporter, "fi-001"), "x", range(28, 42), 2, ("finance.ledger", "finance.invoices"))
    assert pages(run_engine([*exporter, *extra]), detector="slow_exfiltration") == []


# -- severity that means something ------------------------------------------------------------------------

def test_a_page_is_graded_by_its_rank_among_the_detectors_findings_and_the_detectors_rarity() -> None:
    from detectors.calibrate import Calibrator, level_for

    def calibrator(findings: int, events: int) -> Calibrator:
        c = Calibrator(prior_events=0)
        for i in range(findings):
            c.observe(1.0 + i / findings)  # scores 1 to 2
        c.n_ += events - findings
        return c

    rare, chatty = calibrator(20, 2_000_000), calibrator(2_000, 2_000_000)
    # the strongest of a detector's findings ranks above its ordinary ones
    assert rare.paging_severity(1.99) > rare.paging_severity(1.2) >= 50.0
    # at the same rank among its own findings, a rarely firing detector's page is the more severe
    assert rare.paging_severity(1.99) > chatty.paging_severity(1.99)
    # no saturation: a rare detector's ordinary finding is not critical; a rule's certainty is a floor
    assert level_for(rare.paging_severity(1.2)) != "critical"
    assert rare.paging_severity(1.2, floor=85.0) == 85.0


# -- probing and takeover, judged on what is new for this principal --------------------------------------

def test_a_slow_probe_across_a_window_boundary_pages_and_a_broken_job_does_not(base: list[Event]) -> None:
    """Eight resources denied a minute apart, starting three minutes before a quarter-hour boundary, by
    a principal never denied before: the probe's first minutes are not its usual. A script denied on
    one table sixty times is a misconfigured job."""
    who = last_of(base, "fi-005")
    start = T0 + DAYS * DAY + 10 * HOUR + 12 * 60  # 10:12, three minutes before the 10:15 boundary
    probe = [access(who, f"p{i}", start + i * 70, outcome="denied", resource_id=f"secret.{i}", records=0)
             for i in range(8)]
    assert pages(run_engine([*base, *probe]), "fi-005", "denied")
    job = [access(who, f"j{i}", start + i * 60, outcome="denied", resource_id="hr.employees", records=0)
           for i in range(60)]
    assert pages(run_engine([*base, *job])) == []


def test_a_new_country_and_device_page_though_the_browser_is_a_common_one(base: list[Event]) -> None:
    """In office hours, from abroad on a new device, with the same browser string as the principal's:
    a new place and a new machine at once. A new laptop with a newer browser, used in the evening at
    the office, is the same person at work."""
    who = last_of(base, "su-006")
    away = [access(who, f"a{i}", NOW + i * 300, country="NG", ip="203.0.113.9", device_id="dev-9") for i in range(3)]
    assert pages(run_engine([*base, *away]), "su-006", "context")
    evening = T0 + DAYS * DAY + 19 * HOUR
    laptop = [access(who, f"l{i}", evening + i * 600, device_id="lt-new", user_agent="Mozilla/5.0 Chrome/131.0")
              for i in range(3)]
    assert pages(run_engine([*base, *laptop])) == []
