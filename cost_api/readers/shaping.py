"""Turns the warehouse's grouped rows into answers: buckets, shares, per-currency totals.
All arithmetic is on Decimal; nothing adds across currencies."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from enum import StrEnum
from typing import Any

from cost_api.params import Period
from cost_api.schemas.costs import (
    CategoryCost,
    CostTrends,
    CurrencyAmount,
    CurrencyTotal,
    CurrencyTrend,
    LatestCosts,
    LatestItem,
    PeriodPublic,
    ResourceCost,
    ResourceCosts,
    ServiceCost,
    TotalCost,
    TrendPoint,
    TypeCosts,
)

ZERO = Decimal(0)
HUNDREDTH = Decimal("0.01")
Rows = Sequence[Sequence[Any]]


class Grain(StrEnum):
    """Trend bucket size."""

    day = "day"
    week = "week"
    month = "month"


def percent(part: Decimal, whole: Decimal) -> Decimal | None:
    """part/whole in percent, rounded half-even to 2 decimals; None when whole is zero."""
    if whole.is_zero():
        return None
    return (part * 100 / whole).quantize(HUNDREDTH, rounding=ROUND_HALF_EVEN)


def bucket_start(day: date, grain: Grain) -> date:
    if grain is Grain.week:
        return day - timedelta(days=day.weekday())
    if grain is Grain.month:
        return day.replace(day=1)
    return day


def next_bucket(bucket: date, grain: Grain) -> date:
    if grain is Grain.week:
        return bucket + timedelta(days=7)
    if grain is Grain.month:
        return (bucket + timedelta(days=32)).replace(day=1)
    return bucket + timedelta(days=1)


def buckets(period: Period, grain: Grain) -> Iterator[tuple[date, date, date]]:
    """(bucket, first day in period, day after last day in period) for every bucket touched."""
    bucket = bucket_start(period.start, grain)
    while bucket < period.end:
        after = next_bucket(bucket, grain)
        yield bucket, max(bucket, period.start), min(after, period.end)
        bucket = after


def totals_of(amounts: dict[str, Decimal]) -> list[CurrencyAmount]:
    return [CurrencyAmount(currency=c, amount=a) for c, a in sorted(amounts.items())]


def latest(scope: dict[str, Any], rows: Rows) -> LatestCosts:
    day = rows[0][0] if rows else None
    collected = rows[0][1] if rows else None
    if isinstance(collected, datetime) and collected.tzinfo is None:
        collected = collected.replace(tzinfo=UTC)
    totals: dict[str, Decimal] = defaultdict(lambda: ZERO)
    items = []
    for _, _, service, resource, currency, amount, lines in rows:
        totals[currency] += amount
        items.append(
            LatestItem(
                service_name=service,
                resource_id=resource,
                currency=currency,
                amount=amount,
                lines=lines,
            )
        )
    return LatestCosts(
        **scope, day=day, collected_at=collected, totals=totals_of(totals), items=items
    )


def trends(
    scope: dict[str, Any],
    period: Period,
    grain: Grain,
    rows: Rows,
    zero_currencies: Sequence[str] = (),
) -> CostTrends:
    """Per currency of `rows`, plus an all-zero series for each of `zero_currencies` without
    rows: the change percent is against |previous| so its sign is the direction of change."""
    by_bucket: dict[str, dict[date, Decimal]] = defaultdict(lambda: defaultdict(lambda: ZERO))
    for currency in zero_currencies:
        by_bucket.setdefault(currency, defaultdict(lambda: ZERO))
    for day, currency, amount in rows:
        by_bucket[currency][bucket_start(day, grain)] += amount
    series = []
    for currency in sorted(by_bucket):
        sums = by_bucket[currency]
        points: list[TrendPoint] = []
        previous: Decimal | None = None
        for bucket, first, after in buckets(period, grain):
            amount = sums.get(bucket, ZERO)
            change = None if previous is None else amount - previous
            share = None if previous is None else percent(amount - previous, abs(previous))
            points.append(
                TrendPoint(
                    bucket=bucket,
                    start=first,
                    end=after,
                    amount=amount,
                    change=change,
                    change_percent=share,
                )
            )
            previous = amount
        series.append(
            CurrencyTrend(currency=currency, total=sum(sums.values(), ZERO), points=points)
        )
    return CostTrends(**scope, period=PeriodPublic.of(period), group_by=grain, series=series)


def by_resource(scope: dict[str, Any], period: Period, rows: Rows) -> ResourceCosts:
    totals: dict[str, Decimal] = {}
    data = []
    for provider, resource, currency, name, service, amount, currency_total in rows:
        totals[currency] = currency_total
        data.append(
            ResourceCost(
                provider=provider,
                resource_id=resource,
                resource_name=name,
                service_name=service,
                unattributed=not resource,
                currency=currency,
                amount=amount,
                share_percent=percent(amount, currency_total),
            )
        )
    return ResourceCosts(
        **scope, period=PeriodPublic.of(period), totals=totals_of(totals), data=data
    )


def by_type(scope: dict[str, Any], period: Period, rows: Rows) -> TypeCosts:
    services: dict[tuple[str, str], list[ServiceCost]] = defaultdict(list)
    totals: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for currency, category, service, amount in rows:
        services[currency, category].append(ServiceCost(service_name=service, amount=amount))
        totals[currency] += amount
    data = []
    for (currency, category), items in services.items():
        amount = sum((s.amount for s in items), ZERO)
        items.sort(key=lambda s: (-s.amount, s.service_name))
        data.append(
            CategoryCost(
                service_category=category,
                currency=currency,
                amount=amount,
                share_percent=percent(amount, totals[currency]),
                services=items,
            )
        )
    data.sort(key=lambda c: (c.currency, -c.amount, c.service_category))
    return TypeCosts(**scope, period=PeriodPublic.of(period), totals=totals_of(totals), data=data)


def total(scope: dict[str, Any], period: Period, rows: Rows) -> TotalCost:
    totals = [CurrencyTotal(currency=c, amount=a, lines=n) for c, a, n in rows]
    lines = sum(t.lines for t in totals)
    return TotalCost(**scope, period=PeriodPublic.of(period), lines=lines, totals=totals)
