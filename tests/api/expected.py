"""What each endpoint must answer, computed independently with pandas over the written rows."""

from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import pandas as pd

COLUMN = {
    "billed": "BilledCost",
    "effective": "EffectiveCost",
    "list": "ListCost",
    "contracted": "ContractedCost",
}
ZERO = Decimal(0)


def dsum(values: Any) -> Decimal:
    return sum(values, ZERO)


def pct(part: Decimal, whole: Decimal) -> Decimal | None:
    if whole == 0:
        return None
    return (part * 100 / whole).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)


def select(
    lines: pd.DataFrame, customer: str, provider: str, start: date | None, end: date | None
) -> pd.DataFrame:
    keep = lines["customer_id"] == customer
    if provider != "all":
        keep &= lines["provider"] == provider
    if start is not None and end is not None:
        keep &= (lines["day"] >= start) & (lines["day"] < end)
    return lines[keep]


def totals(rows: pd.DataFrame, metric: str) -> dict[str, tuple[Decimal, int]]:
    grouped = rows.groupby("BillingCurrency")[COLUMN[metric]]
    return {c: (dsum(s), len(s)) for c, s in grouped}


def by_type(rows: pd.DataFrame, metric: str) -> dict[tuple[str, str], dict[str, Any]]:
    col = COLUMN[metric]
    currency_totals = {c: dsum(s) for c, s in rows.groupby("BillingCurrency")[col]}
    out = {}
    for (currency, category), group in rows.groupby(["BillingCurrency", "ServiceCategory"]):
        amount = dsum(group[col])
        out[currency, category] = {
            "amount": amount,
            "share": pct(amount, currency_totals[currency]),
            "services": {s: dsum(g) for s, g in group.groupby("ServiceName")[col]},
        }
    return out


def by_resource(rows: pd.DataFrame, metric: str, limit: int) -> list[dict[str, Any]]:
    """Per resource; cost without a resource is one row per service, named by that service."""
    col = COLUMN[metric]
    rows = rows.assign(
        unattributed=rows["ServiceName"].where(rows["ResourceId"] == "", ""),
    )
    grouped = (
        rows.groupby(["provider", "ResourceId", "unattributed", "BillingCurrency"])
        .agg(
            amount=(col, dsum),
            name=("ResourceName", "max"),
            service=("ServiceName", "max"),
        )
        .reset_index()
    )
    currency_totals = {c: dsum(s) for c, s in grouped.groupby("BillingCurrency")["amount"]}
    grouped["neg"] = grouped["amount"].map(lambda a: -a)
    grouped = grouped.sort_values(
        ["BillingCurrency", "neg", "provider", "ResourceId", "unattributed"]
    )
    top = grouped.groupby("BillingCurrency").head(limit)
    return [
        {
            "provider": r.provider,
            "resource_id": r.ResourceId,
            "resource_name": r.name,
            "service_name": r.service,
            "unattributed": r.ResourceId == "",
            "currency": r.BillingCurrency,
            "amount": r.amount,
            "share": pct(r.amount, currency_totals[r.BillingCurrency]),
        }
        for r in top.itertuples()
    ]


FREQ = {"day": "D", "week": "W-SUN", "month": "M"}


def trends(
    rows: pd.DataFrame, metric: str, grain: str, start: date, end: date
) -> dict[str, list[tuple[date, Decimal]]]:
    """Per currency: (bucket start, amount) for every bucket the period touches."""
    freq = FREQ[grain]
    all_buckets = [
        p.start_time.date()
        for p in pd.period_range(
            pd.Timestamp(start), pd.Timestamp(end) - pd.Timedelta(days=1), freq=freq
        )
    ]
    bucket_of = rows["day"].map(lambda d: pd.Period(pd.Timestamp(d), freq=freq).start_time.date())
    out = {}
    for currency, group in rows.assign(bucket=bucket_of).groupby("BillingCurrency"):
        sums = {b: dsum(g) for b, g in group.groupby("bucket")[COLUMN[metric]]}
        out[currency] = [(b, sums.get(b, ZERO)) for b in all_buckets]
    return out


def metric_lines(rows: pd.DataFrame, metric: str) -> list[tuple[Any, ...]]:
    """The lines as the API lists them: newest day first, biggest first within the day."""
    keys = ["provider", "BillingAccountId", "ServiceName", "ResourceId", "RegionId"]
    keys += ["ChargeCategory", "BillingCurrency"]
    ordered = rows.assign(neg=rows[COLUMN[metric]].map(lambda a: -a)).sort_values(
        ["day", "neg", *keys], ascending=[False, True] + [True] * len(keys)
    )
    return [
        (
            r.day.isoformat(),
            r.provider,
            r.BillingAccountId,
            r.ServiceName,
            r.ResourceId,
            r.RegionId,
            r.ChargeCategory,
            r.BilledCost,
            r.EffectiveCost,
            r.ListCost,
            r.ContractedCost,
            r.BillingCurrency,
        )
        for r in ordered.itertuples()
    ]
