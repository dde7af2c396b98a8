"""What FOCUS 1.2 says each day of the sandbox's GCP export holds, computed from the raw export
rows with Google's documented semantics (never with the collector's code):

- net cost of a row is `cost` plus every `credits.amount` (Google's own definition);
- discounts that are part of the price the customer pays (committed-use, sustained-use,
  spend-based, subscription and reseller discounts, the CUD fee offset) lower the usage's
  BilledCost/EffectiveCost; promotions and the free tier are a form of payment: Credit lines;
- cost_type regular is Usage (a "Commitment" SKU is the commitment's fee: Purchase), tax is Tax,
  adjustment and rounding_error are Adjustment; an adjustment invoiced in a later month than
  its usage's (Pacific) month corrects an earlier period: ChargeClass Correction;
- ListCost is cost_at_list (the line's own cost where the export has none, e.g. tax),
  ContractedCost is cost; a credit line's List and Contracted cost are the credit (FOCUS: a
  charge unrelated to others matches its BilledCost);
- the billing period is invoice.month, 00:00 US Pacific to 00:00 US Pacific;
- the day is the UTC day of usage_start_time."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

PACIFIC = ZoneInfo("America/Los_Angeles")
CREDIT_LINE_TYPES = frozenset({"PROMOTION", "FREE_TIER"})
COLUMNS = ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost")
_ZERO = Decimal(0)

# (day, service, charge category) -> column -> amount (None: the export has no such amount)
Ledger = dict[tuple[str, str, str], dict[str, Decimal | None]]


def _category(row: Mapping[str, Any]) -> str:
    kind = row["cost_type"]
    if kind == "tax":
        return "Tax"
    if kind in ("adjustment", "rounding_error"):
        return "Adjustment"
    if str(row["sku"]["description"]).startswith("Commitment"):
        return "Purchase"
    return "Usage"


def billing_period_start(row: Mapping[str, Any]) -> datetime:
    month = str(row["invoice"]["month"])
    first = date(int(month[:4]), int(month[4:]), 1)
    return datetime.combine(first, time(0), PACIFIC).astimezone(UTC)


def is_correction(row: Mapping[str, Any]) -> bool:
    usage_month = row["usage_start_time"].astimezone(PACIFIC).strftime("%Y%m")
    return row["cost_type"] == "adjustment" and str(row["invoice"]["month"]) > usage_month


def lines(row: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The FOCUS lines one export row stands for (before grouping to a day)."""
    folded = sum((c["amount"] for c in row["credits"] if c["type"] not in CREDIT_LINE_TYPES), _ZERO)
    day = row["usage_start_time"].astimezone(UTC).date().isoformat()
    service = row["service"]["description"]
    period = billing_period_start(row)
    own = row["cost"] + folded
    out = [
        {
            "day": day,
            "service": service,
            "category": _category(row),
            "correction": is_correction(row),
            "period": period,
            "BilledCost": own,
            "EffectiveCost": own,
            "ListCost": own if row["cost_at_list"] is None else row["cost_at_list"],
            "ContractedCost": row["cost"],
            "x_ChargeType": row["cost_type"],
        }
    ]
    for credit in row["credits"]:
        if credit["type"] in CREDIT_LINE_TYPES:
            out.append(
                {
                    "day": day,
                    "service": service,
                    "category": "Credit",
                    "correction": False,
                    "period": period,
                    "BilledCost": credit["amount"],
                    "EffectiveCost": credit["amount"],
                    "ListCost": credit["amount"],
                    "ContractedCost": credit["amount"],
                    "x_ChargeType": credit["type"],
                }
            )
    return out


def _add(a: Decimal | None, b: Decimal | None) -> Decimal | None:
    return None if a is None or b is None else a + b


def ledger(rows: Iterable[Mapping[str, Any]], start: date, end: date) -> Ledger:
    """Per UTC day, service and charge category in [start, end): each cost column's total."""
    out: Ledger = {}
    for row in rows:
        for line in lines(row):
            if not start.isoformat() <= line["day"] < end.isoformat():
                continue
            key = (line["day"], line["service"], line["category"])
            sums = out.setdefault(key, dict.fromkeys(COLUMNS, _ZERO))
            for column in COLUMNS:
                sums[column] = _add(sums[column], line[column])
    return out


def by_billing_period(rows: Iterable[Mapping[str, Any]]) -> dict[datetime, Decimal]:
    """BilledCost per invoice month (its start), what Google's invoice totals are."""
    out: dict[datetime, Decimal] = defaultdict(Decimal)
    for row in rows:
        for line in lines(row):
            out[line["period"]] += line["BilledCost"]
    return dict(out)


def net_by_day(rows: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str, str], Decimal]:
    """Google's net cost (cost + credits) per billing account, UTC day and currency."""
    out: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
    for row in rows:
        day = row["usage_start_time"].astimezone(UTC).date().isoformat()
        credits = sum((c["amount"] for c in row["credits"]), _ZERO)
        out[(row["billing_account_id"], day, row["currency"])] += row["cost"] + credits
    return dict(out)
