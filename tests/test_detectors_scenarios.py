"""Hand-built scenarios: for each detector, an incident that must page through the Engine and its
ordinary twin that must not page at all."""

from __future__ import annotations

from dataclasses import replace

import pytest
from detector_streams import DAY, HOUR, T0, access, grant, last_of, pages, routine, run_engine

from detectors.base import Profile
from detectors.events import Event

DAYS = 12
NOW = T0 + DAYS * DAY + 10 * HOUR  # a Tuesday morning after the routine


@pytest.fixture(scope="module")
def base() -> list[Event]:
    return routine(seed=7, days=DAYS)


def test_routine_alone_does_not_page(base: list[Event]) -> None:
    assert pages(run_engine(base)) == []


def test_bulk_export_pages_and_usual_export_does_not(base: list[Event]) -> None:
    who = last_of(base, "fi-001")
    bulk = access(who, "bulk", NOW, action="export", records=400_000, resource_id="finance.invoices")
    assert pages(run_engine([*base, bulk]), "fi-001", "volume")
    usual = access(who, "usual", NOW, action="export", records=900, resource_id="finance.invoices")
    assert pages(run_engine([*base, usual])) == []


def test_snooping_pages_and_a_busy_day_does_not(base: list[Event]) -> None:
    who = last_of(base, "su-002")
    snoop = [
        access(who, f"sn{i}", NOW + i * 20, action="read", records=1, subject_refs=(f"v-{i}",), subjects=1)
        for i in range(400)
    ]
    assert pages(run_engine([*base, *snoop]), "su-002", "subjects")
    busy = [
        access(who, f"bz{i}", NOW + i * 400, action="read", records=1, subject_refs=(f"w-{i}",), subjects=1)
        for i in range(30)
    ]
    assert pages(run_engine([*base, *busy])) == []


def test_special_category_first_touch_pages_without_peers_but_not_after_a_ticketed_grant(
    base: list[Event],
) -> None:
    who = last_of(base, "fi-002")
    touch = access(
        who,
        "med",
        NOW,
        resource_id="hr.medical_leave",
        sensitivity="restricted",
        categories=("health", "pii.hr"),
        action="read",
        records=3,
    )
    alerts = pages(run_engine([*base, touch]), "fi-002", "novelty")
    assert alerts and "0 of" in alerts[0]["reasons"][0]
    # the same category for HR partners, whose peers use it every day: nothing
    hr = last_of(base, "hr-001")
    assert (
        pages(
            run_engine(
                [
                    *base,
                    access(
                        hr,
                        "hr-med",
                        NOW,
                        resource_id="hr.medical_leave",
                        sensitivity="restricted",
                        categories=("health", "pii.hr"),
                    ),
                ]
            )
        )
        == []
    )
    # a restricted resource after an admin's ticketed grant: nothing either
    granted = grant(
        who,
        "g1",
        NOW - 600,
        permission="read:hr.employees",
        resource_id="hr.employees",
        sensitivity="restricted",
        categories=("pii.hr",),
    )
    first = access(
        who, "emp", NOW, resource_id="hr.employees", sensitivity="restricted", categories=("pii.hr",)
    )
    assert pages(run_engine([*base, granted, first])) == []


def test_takeover_pages_and_travel_or_a_new_laptop_do_not(base: list[Event]) -> None:
    who = last_of(base, "su-003")
    night = T0 + DAYS * DAY + 3 * HOUR
    takeover = [
        access(
            who,
            f"ato{i}",
            night + i * 60,
            country="KP",
            ip="203.0.113.7",
            device_id="dev-x",
            user_agent="python-requests/2.31",
        )
        for i in range(3)
    ]
    assert pages(run_engine([*base, *takeover]), "su-003", "context")
    travel = [access(who, f"tr{i}", NOW + i * 600, country="JP", ip="198.51.100.4") for i in range(5)]
    laptop = [access(who, f"lt{i}", NOW + i * 600, device_id="lt-new") for i in range(5)]
    assert pages(run_engine([*base, *travel])) == []
    assert pages(run_engine([*base, *laptop])) == []


def test_privilege_rules_page_and_a_ticketed_admin_grant_does_not(base: list[Event]) -> None:
    who = last_of(base, "su-004")
    self_grant = grant(
        who,
        "sg",
        NOW,
        actor="su-004",
        actor_role="agent",
        actor_department="support",
        permission="role:dba",
        privileged=True,
        ticket=None,
        resource_id="",
    )
    alerts = pages(run_engine([*base, self_grant]), "su-004", "privilege")
    assert alerts and "self_grant" in alerts[0]["reasons"][-1]
    assert pages(run_engine([*base, grant(who, "ok", NOW)])) == []


def test_ticketed_routine_self_grant_by_an_admin_is_reported_not_paged(base: list[Event]) -> None:
    who = last_of(base, "su-004")
    routine_grant = grant(who, "rsg", NOW, actor="su-004", permission="read:support.macros")
    alerts = [a for a in run_engine([*base, routine_grant]) if a["detector"] == "privilege"]
    assert alerts and not pages(alerts)
    # without the ticket, or for a privileged permission, the same self-grant pages
    assert pages(run_engine([*base, replace(routine_grant, ticket=None)]), "su-004", "privilege")
    assert pages(run_engine([*base, replace(routine_grant, privileged=True)]), "su-004", "privilege")


def test_grant_then_bulk_read_pages_but_not_after_a_ticket(base: list[Event]) -> None:
    who = last_of(base, "su-005")
    unticketed = grant(
        who,
        "g",
        NOW,
        ticket=None,
        permission="read:hr.employees",
        resource_id="hr.employees",
        sensitivity="restricted",
    )
    bulk = access(
        who,
        "bulk",
        NOW + 900,
        action="query",
        records=80_000,
        resource_id="hr.employees",
        sensitivity="restricted",
        categories=("pii.hr",),
    )
    alerts = pages(run_engine([*base, unticketed, bulk]), "su-005", "privilege")
    assert alerts and "granted 15 minutes earlier" in alerts[0]["reasons"][1]
    ticketed = replace(unticketed, ticket="CHG-2")
    small = replace(bulk, records=12)
    assert pages(run_engine([*base, ticketed, small])) == []


def test_unticketed_regrant_of_a_resource_in_use_is_not_suspicious(base: list[Event]) -> None:
    """A routine unticketed grant of a table the principal already works with, then an export of
    it, does not page: only a grant of a resource new to the principal makes the read suspicious."""
    who = last_of(base, "fi-001")
    regrant = grant(
        who,
        "rg",
        NOW,
        ticket=None,
        permission="read:finance.invoices",
        resource_id="finance.invoices",
        sensitivity="confidential",
    )
    export = access(
        who, "ex", NOW + 600, action="export", records=300, resource_id="finance.invoices", sensitivity="confidential"
    )
    assert not pages(run_engine([*base, regrant, export]), "fi-001", "privilege")


def test_novelty_forgets_a_principal_out_of_its_group_counts() -> None:
    from detectors.novelty import Novelty

    d = Novelty()
    events = [
        Event(kind="access", event_id=f"e{i}", ts=T0 + i, principal_id=f"u{i}", department="hr", role="partner",
              resource_id="hr.employees", sensitivity="restricted", categories=("pii.hr",))
        for i in range(3)
    ]
    for e in events:
        d.learn_one(e, Profile(first_ts=e.ts, last_ts=e.ts, peer_group=e.peer_group))  # compiled: a real Profile
    assert d.groups_.size("peer:hr/partner") == 3
    item = events[0].sensitive_items[0][2]
    assert d.groups_.recent("peer:hr/partner", item, events[0].day) == 3
    d.forget("u0")
    assert d.groups_.size("peer:hr/partner") == 2
    assert d.groups_.recent("peer:hr/partner", item, events[0].day) == 2
    assert "u0" not in d.member_


def test_the_first_adopters_of_a_brand_new_table_are_not_paged(base: list[Event]) -> None:
    """A team starts using a table nobody had touched before: the first few colleagues to touch it
    have no peers doing so yet, but a table that new is not someone else's data."""
    adopters = [
        access(last_of(base, f"fi-00{i}"), f"new{i}", NOW + i * 900, resource_id="finance.forecast_v2",
               sensitivity="restricted", categories=(), action="read", records=40)
        for i in range(4)
    ]
    assert pages(run_engine([*base, *adopters]), detector="novelty") == []
    # a pipeline loaded the table days before anyone used it: still new to people
    loaded = access(last_of(base, "svc-etl-00"), "load", NOW - 3 * DAY, resource_id="finance.forecast_v2",
                    sensitivity="restricted", categories=(), action="write", records=40_000)
    assert pages(run_engine([*base, loaded, *adopters]), detector="novelty") == []
    # the same first touches of a table the organisation has long used elsewhere do page
    elsewhere = [
        access(last_of(base, "hr-000"), f"hr{d}", T0 + d * DAY + 11 * HOUR, resource_id="finance.forecast_v2",
               sensitivity="restricted", categories=(), action="read", records=40)
        for d in range(4, 9)
    ]
    assert pages(run_engine([*base, *elsewhere, *adopters]), detector="novelty")


def test_dormant_account_pages_and_a_short_absence_does_not(base: list[Event]) -> None:
    who = last_of(base, "fi-003")
    early = [e for e in base if e.principal_id != "fi-003" or e.ts < T0 + 2 * DAY]
    wake = access(
        who, "wake", T0 + 40 * DAY, resource_id="finance.invoices", device_id="dev-new", country="RO"
    )
    assert pages(run_engine([*early, wake]), "fi-003", "dormancy")
    back = access(who, "back", NOW + 5 * DAY, resource_id="finance.invoices")
    assert pages(run_engine([*base, back])) == []


def test_denied_probing_pages_and_a_stray_denial_does_not(base: list[Event]) -> None:
    who = last_of(base, "fi-004")
    probe = [
        access(who, f"dn{i}", NOW + i * 30, outcome="denied", resource_id=f"secret.{i % 12}", records=0)
        for i in range(30)
    ]
    assert pages(run_engine([*base, *probe]), "fi-004", "denied")
    stray = [
        access(who, f"st{i}", NOW + i * 3000, outcome="denied", resource_id="hr.employees", records=0)
        for i in range(3)
    ]
    assert pages(run_engine([*base, *stray])) == []


def test_service_misuse_pages_and_a_host_move_does_not(base: list[Event]) -> None:
    svc = last_of(base, "svc-etl-00")
    misuse = [
        access(
            svc,
            f"sm{i}",
            NOW + i * 120,
            country="VN",
            ip="203.0.113.50",
            device_id="dev-b",
            user_agent="Mozilla/5.0 (Windows NT 10.0) Chrome/126.0",
            action="export",
            records=20_000,
        )
        for i in range(3)
    ]
    assert pages(run_engine([*base, *misuse]), "svc-etl-00", "service_misuse")
    moved = [
        access(svc, f"mv{i}", NOW + i * 900, ip="10.200.7.10", device_id="host-etl-new") for i in range(4)
    ]
    assert pages(run_engine([*base, *moved])) == []


def test_multivariate_stays_quiet_on_routine(base: list[Event]) -> None:
    assert not pages(run_engine(base), detector="multivariate")
