"""A charge covering several days is attributed to its days exactly."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from cost_pipelines.focus.spread import split_evenly, spread_daily


@pytest.mark.parametrize(
    ("amount", "parts"),
    [("100", 30), ("0.000000000001", 31), ("-7.5", 7), ("3.31", 28), ("1", 1)],
)
def test_shares_add_up_to_the_charge_to_the_last_decimal(amount: str, parts: int) -> None:
    shares = split_evenly(Decimal(amount), parts)
    assert len(shares) == parts and sum(shares) == Decimal(amount)
    assert all(share.as_tuple().exponent >= -12 for share in shares)  # the stored scale


def test_a_monthly_fee_becomes_one_marked_line_per_day_and_keeps_absent_columns_null() -> None:
    fee = {"BilledCost": "30.000000000001", "ListCost": None, "PricingQuantity": "", "x": "kept"}
    lines = spread_daily(fee, date(2026, 11, 1), date(2026, 12, 1))
    assert len(lines) == 30
    assert sum(line["BilledCost"] for line in lines) == Decimal("30.000000000001")
    assert {line["ListCost"] for line in lines} == {None}
    assert {line["PricingQuantity"] for line in lines} == {None}
    assert lines[0]["ChargePeriodStart"] == datetime(2026, 11, 1, tzinfo=UTC)
    assert lines[-1]["ChargePeriodEnd"] == datetime(2026, 12, 1, tzinfo=UTC)
    assert {(line["x_SpreadPeriodStart"], line["x_SpreadPeriodEnd"]) for line in lines} == {
        (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))
    }
    assert {line["x"] for line in lines} == {"kept"}


def test_a_one_day_charge_is_not_marked_as_spread() -> None:
    [line] = spread_daily({"BilledCost": "2"}, date(2026, 11, 3), date(2026, 11, 4))
    assert "x_SpreadPeriodStart" not in line and line["BilledCost"] == "2"


def test_a_period_without_a_day_is_refused() -> None:
    with pytest.raises(ValueError, match="has no day"):
        spread_daily({"BilledCost": "1"}, date(2026, 11, 3), date(2026, 11, 3))
