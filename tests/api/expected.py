"""What each endpoint must answer, computed independently with pandas over the written rows."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
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
    """Per resource; cost without a resource is one row per service, named by that service.
    Net, gross (positive lines) and credits (negative lines); share = gross / currency gross."""
    col = COLUMN[metric]
    rows = rows.assign(
        unattributed=rows["ServiceName"].where(rows["ResourceId"] == "", ""),
        positive=rows[col].map(lambda a: a if a > 0 else ZERO),
        negative=rows[col].map(lambda a: a if a < 0 else ZERO),
    )
    grouped = (
        rows.groupby(["provider", "ResourceId", "unattributed", "BillingCurrency"])
        .agg(
            amount=(col, dsum),
            gross=("positive", dsum),
            credits=("negative", dsum),
            name=("ResourceName", "max"),
            service=("ServiceName", "max"),
        )
        .reset_index()
    )
    gross_totals = {c: dsum(s) for c, s in grouped.groupby("BillingCurrency")["gross"]}
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
            "gross_cost": r.gross,
            "credits": r.credits,
            "share": pct(r.gross, gross_totals[r.BillingCurrency]),
        }
        for r in top.itertuples()
    ]


def last_complete_day(
    lines: pd.DataFrame, loads: list[Any], customer: str, provider: str
) -> date | None:
    """The documented rule over the test's own loads: a day is complete when every account's
    load of it came after the day ended, and the provider has cost later or the load came a
    full day after the day ended."""
    mine = [x for x in loads if (x.window.customer_id, x.window.provider) == (customer, provider)]
    rows = lines[(lines["customer_id"] == customer) & (lines["provider"] == provider)]
    newest = rows["day"].max() if len(rows) else None
    collected: dict[date, datetime] = {}
    for load in mine:
        for day in load.window.days:
            collected[day] = min(collected.get(day, load.before), load.before)
    complete = [
        d
        for d, at in collected.items()
        if at >= midnight(d + timedelta(days=1))
        and ((newest is not None and d < newest) or at >= midnight(d + timedelta(days=2)))
    ]
    return max(complete, default=None)


def midnight(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


def collected_days(loads: list[Any], customer: str, provider: str) -> set[date]:
    return {
        d
        for x in loads
        if (x.window.customer_id, x.window.provider) == (customer, provider)
        for d in x.window.days
    }


def open_days(
    lines: pd.DataFrame, loads: list[Any], customer: str, providers: list[str], today: date
) -> Callable[[date], bool]:
    lasts = {p: last_complete_day(lines, loads, customer, p) for p in providers}
    days = {p: collected_days(loads, customer, p) for p in providers}

    def is_open(day: date) -> bool:
        return day >= today or any(
            day in days[p] and (lasts[p] is None or day > lasts[p]) for p in providers
        )

    return is_open


FREQ = {"day": "D", "week": "W-SUN", "month": "M"}


def trends(
    rows: pd.DataFrame,
    metric: str,
    grain: str,
    start: date,
    end: date,
    is_open: Callable[[date], bool] = lambda d: False,
) -> dict[str, list[dict[str, Any]]]:
    """Per currency, every bucket the period touches: its amount, days, open days, whether it
    is partial, its daily average over complete days, and the change against the previous one
    (amounts when both are whole, daily averages when either is partial)."""
    freq = FREQ[grain]
    periods = pd.period_range(
        pd.Timestamp(start), pd.Timestamp(end) - pd.Timedelta(days=1), freq=freq
    )
    bucket_of = rows["day"].map(lambda d: pd.Period(pd.Timestamp(d), freq=freq).start_time.date())
    out = {}
    for currency, group in rows.assign(bucket=bucket_of).groupby("BillingCurrency"):
        daily = {d: dsum(g) for d, g in group.groupby("day")[COLUMN[metric]]}
        points: list[dict[str, Any]] = []
        for p in periods:
            natural = (p.start_time.date(), p.end_time.date() + timedelta(days=1))
            first, after = max(natural[0], start), min(natural[1], end)
            inside = [first + timedelta(days=i) for i in range((after - first).days)]
            opened = [d for d in inside if is_open(d)]
            settled = [d for d in inside if not is_open(d)]
            partial = natural != (first, after) or bool(opened)
            average = None
            if settled:
                with localcontext(prec=80):
                    total = dsum(daily.get(d, ZERO) for d in settled)
                    average = (total / len(settled)).quantize(
                        Decimal("1e-12"), rounding=ROUND_HALF_EVEN
                    )
            point = {
                "bucket": natural[0],
                "days": len(inside),
                "open_days": len(opened),
                "partial": partial,
                "amount": dsum(daily.get(d, ZERO) for d in inside),
                "daily_average": average,
                "change_basis": None,
                "change": None,
                "change_percent": None,
            }
            if points:
                before = points[-1]
                if not partial and not before["partial"]:
                    now_v, before_v, basis = point["amount"], before["amount"], "total"
                elif average is not None and before["daily_average"] is not None:
                    now_v, before_v = average, before["daily_average"]
                    basis = "daily_average"
                else:
                    basis = None
                if basis is not None:
                    point["change_basis"] = basis
                    point["change"] = now_v - before_v
                    point["change_percent"] = pct(now_v - before_v, abs(before_v))
            points.append(point)
        out[currency] = points
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
