"""The sandbox's bill generator: deterministic, and shaped like real bills."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal

import pytest

from cost_local.sandbox.bills import QUANTUM, GeneratedLine, generate_bills, restate, spike_day
from cost_local.sandbox.catalog import demo_accounts

START, END = date(2025, 1, 1), date(2026, 1, 1)
ACCOUNTS = demo_accounts("acme")


@pytest.fixture(scope="module")
def year() -> list[GeneratedLine]:
    return generate_bills(ACCOUNTS, START, END, seed=11)


def daily_totals(lines: list[GeneratedLine], account_id: str) -> dict[date, Decimal]:
    totals: dict[date, Decimal] = defaultdict(Decimal)
    for line in lines:
        if line.billing_account_id == account_id and line.charge_category == "Usage":
            totals[line.charge_date] += line.billed_cost
    return totals


def test_same_seed_gives_identical_bills(year: list[GeneratedLine]) -> None:
    again = generate_bills(ACCOUNTS, START, END, seed=11)
    assert again == year
    assert [line.tags for line in again] == [line.tags for line in year]


def test_another_seed_gives_other_amounts(year: list[GeneratedLine]) -> None:
    other = generate_bills(ACCOUNTS, START, END, seed=12)
    assert sum(x.billed_cost for x in other) != sum(x.billed_cost for x in year)


def test_amounts_are_exact_decimals_to_ten_places(year: list[GeneratedLine]) -> None:
    for line in year:
        for amount in (line.billed_cost, line.effective_cost, line.list_cost):
            assert isinstance(amount, Decimal)
            assert amount == amount.quantize(QUANTUM)
    assert min(x.list_unit_price for x in year if x.list_unit_price) == Decimal("0.0000002")


def test_every_provider_and_several_accounts_services_and_categories(
    year: list[GeneratedLine],
) -> None:
    assert {x.provider for x in year} == {"aws", "azure", "gcp", "vultr"}
    assert len({x.sub_account_id for x in year}) >= 8
    assert {"Compute", "Storage", "Databases", "Networking", "AI and Machine Learning"} <= {
        x.service_category for x in year
    }
    assert len({x.resource_id for x in year if x.resource_id}) >= 100
    assert {x.currency for x in year if x.provider == "azure"} == {"EUR"}


def test_each_account_spikes_on_its_spike_day(year: list[GeneratedLine]) -> None:
    for account in ACCOUNTS:
        totals = daily_totals(year, account.billing_account_id)
        day = spike_day(account, START, END, 11)
        neighbours = [totals[d] for d in (day - timedelta(days=7), day + timedelta(days=7))]
        assert totals[day] > max(v for v in neighbours if v) * Decimal("1.1"), account.provider


def test_weekends_cost_less_and_costs_grow(year: list[GeneratedLine]) -> None:
    totals = daily_totals(year, ACCOUNTS[0].billing_account_id)
    weekend = [v for d, v in totals.items() if d.weekday() >= 5]
    weekday = [v for d, v in totals.items() if d.weekday() < 5]
    assert sum(weekend) / len(weekend) < sum(weekday) / len(weekday)
    january = sum(v for d, v in totals.items() if d.month == 1)
    december = sum(v for d, v in totals.items() if d.month == 12)
    assert december > january * Decimal("1.2")


def test_credits_are_negative_and_taxes_follow_the_day_net_cost(year: list[GeneratedLine]) -> None:
    credits = [x for x in year if x.charge_category == "Credit"]
    assert credits and all(x.billed_cost < 0 for x in credits)
    assert {x.provider for x in credits} == {"aws", "gcp"}
    aws = ACCOUNTS[0]
    taxes = [x for x in year if x.charge_category == "Tax" and x.provider == "aws"]
    tax = taxes[0]
    base = sum(
        x.billed_cost
        for x in year
        if x.charge_category != "Tax"
        and x.sub_account_id == tax.sub_account_id
        and x.charge_date == tax.charge_date
    )
    assert tax.billed_cost == (base * aws.tax_rate).quantize(QUANTUM)


def test_restatement_changes_and_removes_only_recent_lines(year: list[GeneratedLine]) -> None:
    since = END - timedelta(days=3)
    restated = restate(year, ACCOUNTS, since=since, seed=5)
    old = [x for x in year if x.charge_date < since]
    assert [x for x in restated if x.charge_date < since] == old
    recent_before = [x for x in year if x.charge_date >= since]
    recent_after = [x for x in restated if x.charge_date >= since]
    assert len(recent_after) < len(recent_before)
    assert sum(x.billed_cost for x in recent_after) != sum(x.billed_cost for x in recent_before)
    assert restate(year, ACCOUNTS, since=since, seed=5) == restated


def test_spike_on_puts_every_accounts_spike_on_that_day_and_changes_nothing_else() -> None:
    start, end, day = date(2025, 3, 1), date(2025, 4, 15), date(2025, 4, 2)
    usual = generate_bills(ACCOUNTS, start, end, seed=11)
    moved = generate_bills(ACCOUNTS, start, end, seed=11, spike_on=day)
    for account in ACCOUNTS:
        before = daily_totals(usual, account.billing_account_id)
        after = daily_totals(moved, account.billing_account_id)
        assert after[day] > before[day] * Decimal("1.1"), account.provider
        usual_spike = spike_day(account, start, end, 11)
        untouched = set(after) - {day, usual_spike}
        assert {d: after[d] for d in untouched} == {d: before[d] for d in untouched}
