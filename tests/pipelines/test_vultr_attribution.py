"""Which days a Vultr item is attributed to, and what its FOCUS line says, for the item shapes
Vultr's API returns (fixtures in the shape of Vultr's documented responses)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from cost_pipelines.assets.vultr import (
    attributed_days,
    focus_lines,
    invoice_month,
    merged,
    month_of,
    pending_month,
)

NOVEMBER = month_of(date(2024, 11, 1))
INSTANCE = {  # a pending charge whose period ends at the moment of the request
    "description": "65.65.65.65 (1024 MB) [my-instance]",
    "start_date": "2024-11-01T00:00:00+00:00",
    "end_date": "2024-11-19T11:20:52+00:00",
    "units": 444,
    "unit_type": "hours",
    "unit_price": Decimal("0.00744047619047619"),
    "total": Decimal("3.31"),
    "product": "Vultr Cloud Compute",
}


def test_a_pending_charge_covers_its_days_up_to_now() -> None:
    now = datetime(2024, 11, 19, 11, 21, tzinfo=UTC)
    assert pending_month(INSTANCE) == NOVEMBER
    assert attributed_days(INSTANCE, NOVEMBER, now) == (date(2024, 11, 1), date(2024, 11, 20))
    month_end = {**INSTANCE, "end_date": "2024-11-30T23:59:59+00:00"}
    # The month's end is in the future: only the days begun by now get the accrued total.
    assert attributed_days(month_end, NOVEMBER, now) == (date(2024, 11, 1), date(2024, 11, 20))
    lines = focus_lines("acct", month_end, NOVEMBER, estimated=True, until=now)
    assert len(lines) == 19 and sum(line["BilledCost"] for line in lines) == Decimal("3.31")
    assert all(line["x_Estimated"] for line in lines)


def test_invoice_items_are_clamped_to_their_billing_month() -> None:
    whole = {**INSTANCE, "end_date": "2024-12-01T00:00:00+00:00"}  # midnight is exclusive
    assert attributed_days(whole, NOVEMBER) == (date(2024, 11, 1), date(2024, 12, 1))
    older = {**INSTANCE, "start_date": "2024-07-14T09:00:00+00:00"}
    assert attributed_days(older, NOVEMBER) == (date(2024, 11, 1), date(2024, 11, 20))
    instant = {**INSTANCE, "start_date": "2024-11-10T01:56:20+00:00"}
    instant["end_date"] = instant["start_date"]  # a period of no length: its day
    assert attributed_days(instant, NOVEMBER) == (date(2024, 11, 10), date(2024, 11, 11))
    before = {**INSTANCE, "start_date": "2024-10-02T00:00:00+00:00"}
    before["end_date"] = "2024-10-05T00:00:00+00:00"  # billed late: the month's first day
    assert attributed_days(before, NOVEMBER) == (date(2024, 11, 1), date(2024, 11, 2))


def test_an_invoice_issued_days_after_the_month_bills_that_month() -> None:
    assert invoice_month({"date": "2024-12-01T00:00:00+00:00"}) == NOVEMBER
    assert invoice_month({"date": "2024-12-03T07:12:00+00:00"}) == NOVEMBER


def test_categories_and_cost_columns_come_from_the_item_kind() -> None:
    [usage] = focus_lines(
        "acct", {**INSTANCE, "end_date": INSTANCE["start_date"]}, NOVEMBER, estimated=False
    )
    assert (usage["ChargeCategory"], usage["x_ChargeType"]) == ("Usage", "hours")
    assert usage["ServiceCategory"] == "Compute"
    # 444 x 0.00744047619 = 3.3036: Vultr's total is 3.31, the list cost in cents rounds up too.
    assert usage["ListCost"] == Decimal("3.31") >= usage["BilledCost"]
    assert usage["EffectiveCost"] == usage["ContractedCost"] == usage["BilledCost"]
    capped = {**INSTANCE, "units": 720, "unit_price": Decimal("0.0149"), "total": Decimal(10)}
    capped_lines = focus_lines("acct", capped, NOVEMBER, estimated=False)
    # The monthly cap: billed 10, list 720 hours at the hourly rate (10.728, in cents 10.73).
    assert sum(line["ListCost"] for line in capped_lines) == Decimal("10.73")
    assert sum(line["BilledCost"] for line in capped_lines) == Decimal(10)
    discount = {**INSTANCE, "unit_type": "discount", "units": 1, "total": Decimal("-2")}
    [credit] = focus_lines(
        "acct", {**discount, "end_date": discount["start_date"]}, NOVEMBER, estimated=False
    )
    # FOCUS: ListCost is never null; a credit, unrelated to other charges, matches BilledCost.
    assert (credit["ChargeCategory"], credit["ListCost"], credit["PricingQuantity"]) == (
        "Credit",
        Decimal("-2"),
        None,
    )
    tax = {**INSTANCE, "product": "VAT", "unit_type": "", "total": Decimal("0.66")}
    assert focus_lines("acct", tax, NOVEMBER, estimated=False)[0]["ChargeCategory"] == "Tax"


def test_two_items_of_one_day_with_one_key_are_one_line() -> None:
    day = {**INSTANCE, "end_date": INSTANCE["start_date"]}
    lines = merged(
        focus_lines("acct", day, NOVEMBER, estimated=False)
        + focus_lines("acct", {**day, "total": Decimal("1.5")}, NOVEMBER, estimated=False)
    )
    assert len(lines) == 1 and lines[0]["BilledCost"] == Decimal("4.81")
