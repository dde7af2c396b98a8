"""Charges that cover several days (a monthly fee, a Vultr invoice item) spread over their days,
so day-based reads attribute them exactly: each day's share is rounded to the stored scale and
the last day takes the remainder, so the days add up to the charge to the last decimal."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from cost_pipelines.warehouse.writer import MONEY_QUANTUM

# The columns divided among the days; everything else is copied to every day's line.
SPREAD_AMOUNTS = ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "PricingQuantity")


def _midnight(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), UTC)


def _absent(value: Any) -> bool:
    """No amount: None, NaN or an empty cell (the writer stores it as NULL)."""
    if isinstance(value, str):
        return not value.strip()
    return value is None or (isinstance(value, float) and math.isnan(value))


def _amount(value: Any, column: str) -> Decimal:
    """An amount as an exact Decimal (a float through its shortest repr, as the writer does)."""
    try:
        return Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{column} {value!r} is not a number") from None


def split_evenly(amount: Decimal, parts: int) -> list[Decimal]:
    """`amount` in `parts` shares of the stored scale that add up to it exactly."""
    if parts < 1:
        raise ValueError(f"cannot split into {parts} parts")
    share = (amount / parts).quantize(MONEY_QUANTUM, rounding=ROUND_HALF_EVEN)
    return [share] * (parts - 1) + [amount - share * (parts - 1)]


def spread_daily(line: Mapping[str, Any], first: date, end: date) -> list[dict[str, Any]]:
    """One line per day of [first, end), amounts split evenly, each marked with the charge's
    whole period (x_SpreadPeriodStart/End). A one-day charge comes back as it is."""
    days = (end - first).days
    if days < 1:
        raise ValueError(f"charge period [{first}, {end}) has no day")
    if days == 1:
        return [
            {
                **line,
                "ChargePeriodStart": _midnight(first),
                "ChargePeriodEnd": _midnight(end),
            }
        ]
    absent = [column for column in SPREAD_AMOUNTS if column in line and _absent(line[column])]
    shares = {
        column: split_evenly(_amount(line[column], column), days)
        for column in SPREAD_AMOUNTS
        if column in line and column not in absent
    }
    out = []
    for index in range(days):
        day = first + timedelta(days=index)
        out.append(
            {
                **line,
                **{column: values[index] for column, values in shares.items()},
                **dict.fromkeys(absent),
                "ChargePeriodStart": _midnight(day),
                "ChargePeriodEnd": _midnight(day + timedelta(days=1)),
                "x_SpreadPeriodStart": _midnight(first),
                "x_SpreadPeriodEnd": _midnight(end),
            }
        )
    return out
