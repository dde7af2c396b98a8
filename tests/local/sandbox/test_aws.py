"""The AWS sandbox bills like a real account with commitments: the records AWS documents, and
Cost Explorer answers whose split queries add up to the linked accounts' totals."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from decimal import Decimal

from cost_local.sandbox.aws import cost_explorer_results
from cost_local.sandbox.aws_billing import aws_records
from cost_local.sandbox.bills import generate_bills
from cost_local.sandbox.catalog import demo_accounts

START, END = date(2026, 10, 1), date(2026, 11, 10)
ACCOUNT = next(a for a in demo_accounts("sandbox") if a.provider == "aws")
BILLS = generate_bills([ACCOUNT], START, END, seed=3)


def test_covered_usage_is_free_unblended_and_savings_plan_usage_is_negated() -> None:
    records = aws_records(BILLS)
    discounted = [r for r in records if r.record_type == "DiscountedUsage"]
    assert discounted and all(r.unblended == 0 < r.net_amortized for r in discounted)
    covered = sorted(
        (r.day, r.resource_id, r.unblended)
        for r in records
        if r.record_type == "SavingsPlanCoveredUsage"
    )
    negated = sorted(
        (r.day, r.resource_id, -r.unblended)
        for r in records
        if r.record_type == "SavingsPlanNegation"
    )
    assert covered and covered == negated
    assert all(r.net_amortized == 0 for r in records if r.record_type == "SavingsPlanNegation")


def test_commitment_fees_fall_on_the_purchase_day_and_then_on_every_first() -> None:
    fees = defaultdict(list)
    for record in aws_records(BILLS):
        if record.record_type in ("RIFee", "SavingsPlanRecurringFee", "Upfront"):
            fees[record.record_type].append(record.day)
    assert fees == {
        "Upfront": [START],
        "RIFee": [START, date(2026, 11, 1)],
        "SavingsPlanRecurringFee": [START, date(2026, 11, 1)],
    }


def _by_day(page: dict, key: int | None = None) -> dict[str, Decimal]:
    sums: dict[str, Decimal] = defaultdict(Decimal)
    for period in page["ResultsByTime"]:
        for group in period["Groups"]:
            if key is None or group["Keys"][0] == key:
                sums[period["TimePeriod"]["Start"]] += Decimal(
                    group["Metrics"]["UnblendedCost"]["Amount"]
                )
    return sums


def test_the_split_queries_add_up_to_each_linked_accounts_daily_total() -> None:
    # Unpaged: the totals, then per linked account (id order) its usage and its other records.
    totals, *details = cost_explorer_results(BILLS, START, END, page_size=10_000)
    accounts = sorted(sub.id for sub in ACCOUNT.sub_accounts)
    assert len(details) == 2 * len(accounts)
    for index, account in enumerate(accounts):
        usage, other = _by_day(details[2 * index]), _by_day(details[2 * index + 1])
        split = {day: usage.get(day, Decimal(0)) + other.get(day, Decimal(0)) for day in usage}
        assert split == _by_day(totals, account)
    record_types = {
        group["Keys"][1]
        for page in details[1::2]
        for period in page["ResultsByTime"]
        for group in period["Groups"]
    }
    assert record_types == {
        "Tax",
        "Credit",
        "Refund",
        "RIFee",
        "Upfront",
        "SavingsPlanRecurringFee",
    }
