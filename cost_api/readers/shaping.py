"""Turns the warehouse's grouped rows into answers: buckets, shares, per-currency totals, and
each provider's completeness. All arithmetic is on Decimal; nothing adds across currencies
(converted answers have one currency)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from enum import StrEnum
from typing import Any

from cost_api.params import Period
from cost_api.readers.completeness import DataState
from cost_api.schemas.costs import (
    CategoryCost,
    Conversion,
    CostTrends,
    CurrencyAmount,
    CurrencyTotal,
    CurrencyTrend,
    LatestCosts,
    LatestItem,
    PeriodPublic,
    ProviderLatest,
    ResourceCost,
    ResourceCosts,
    ResourceTotal,
    ServiceCost,
    TotalCost,
    TrendPoint,
    TypeCosts,
)

ZERO = Decimal(0)
HUNDREDTH = Decimal("0.01")
PICO = Decimal("1e-12")
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


@dataclass(frozen=True)
class LatestDay:
    """The day `latest` shows for one provider."""

    day: date
    complete: bool
    estimated: bool
    collected_at: datetime
    open_day: date | None


def latest_days(state: DataState) -> dict[str, LatestDay]:
    """Per provider with cost: its newest complete day with cost, or its newest day with cost
    when none is complete yet."""
    picks = {}
    for name, provider in state.providers.items():
        newest = provider.newest_cost_day
        if newest is None:
            continue
        last = provider.last_complete_day
        complete_days = [d for d, s in provider.days.items() if s.lines and last and d <= last]
        day = max(complete_days) if complete_days else newest
        chosen = provider.days[day]
        picks[name] = LatestDay(
            day=day,
            complete=bool(complete_days),
            estimated=chosen.estimated,
            collected_at=chosen.collected_last,
            open_day=newest if newest > day else None,
        )
    return picks


def latest(
    scope: dict[str, Any],
    state: DataState,
    picks: dict[str, LatestDay],
    rows: Rows,
    conversion: Conversion | None,
) -> LatestCosts:
    items: dict[str, list[LatestItem]] = defaultdict(list)
    totals: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(lambda: ZERO))
    for provider, service, resource, currency, amount, lines in rows:
        totals[provider][currency] += amount
        items[provider].append(
            LatestItem(
                service_name=service,
                resource_id=resource,
                currency=currency,
                amount=amount,
                lines=lines,
            )
        )
    entries = [
        ProviderLatest(
            provider=provider,
            day=pick.day,
            complete=pick.complete,
            estimated=pick.estimated,
            collected_at=pick.collected_at,
            open_day=pick.open_day,
            totals=totals_of(totals[provider]),
            items=items[provider],
        )
        for provider, pick in sorted(picks.items())
    ]
    completeness = state.completeness(sorted({p.day for p in picks.values()}))
    return LatestCosts(**scope, providers=entries, completeness=completeness, conversion=conversion)


def average(amount: Decimal, days: int) -> Decimal | None:
    """amount / days rounded half-even to 12 decimals (exactly: no intermediate rounding)."""
    if days <= 0:
        return None
    with localcontext(prec=80):
        return (amount / days).quantize(PICO, rounding=ROUND_HALF_EVEN)


def trends(
    scope: dict[str, Any],
    period: Period,
    grain: Grain,
    rows: Rows,
    zero_currencies: Sequence[str],
    state: DataState,
    conversion: Conversion | None = None,
) -> CostTrends:
    """Per currency of `rows`, plus an all-zero series for each of `zero_currencies` without
    rows. A bucket cut by the period or holding open days is partial; the change between two
    buckets compares their daily averages (over complete days) when either is partial, their
    amounts when both are whole. The change percent is against |previous| so its sign is the
    direction of change."""
    days = [period.start + timedelta(days=i) for i in range(period.days)]
    open_days = state.open_days(days)
    estimated = state.estimated_days(days)
    by_day: dict[str, dict[date, Decimal]] = defaultdict(lambda: defaultdict(lambda: ZERO))
    for currency in zero_currencies:
        by_day.setdefault(currency, defaultdict(lambda: ZERO))
    for day, currency, amount in rows:
        by_day[currency][day] += amount
    series = []
    for currency in sorted(by_day):
        amounts = by_day[currency]
        points: list[TrendPoint] = []
        previous: TrendPoint | None = None
        for bucket, first, after in buckets(period, grain):
            inside = [first + timedelta(days=i) for i in range((after - first).days)]
            opened = [d for d in inside if d in open_days]
            cut = first > bucket or after < next_bucket(bucket, grain)
            amount = sum((amounts.get(d, ZERO) for d in inside), ZERO)
            settled = sum((amounts.get(d, ZERO) for d in inside if d not in open_days), ZERO)
            point = TrendPoint(
                bucket=bucket,
                start=first,
                end=after,
                days=len(inside),
                open_days=len(opened),
                estimated_days=sum(1 for d in inside if d in estimated),
                partial=cut or bool(opened),
                amount=amount,
                daily_average=average(settled, len(inside) - len(opened)),
                change_basis=None,
                change=None,
                change_percent=None,
            )
            if previous is not None:
                compare(point, previous)
            points.append(point)
            previous = point
        series.append(
            CurrencyTrend(currency=currency, total=sum(amounts.values(), ZERO), points=points)
        )
    return CostTrends(
        **scope,
        period=PeriodPublic.of(period),
        group_by=grain,
        series=series,
        completeness=state.completeness(days),
        conversion=conversion,
    )


def compare(point: TrendPoint, previous: TrendPoint) -> None:
    """Set the change of `point` against `previous`: never a whole bucket against a partial."""
    if not point.partial and not previous.partial:
        now, before, basis = point.amount, previous.amount, "total"
    elif point.daily_average is not None and previous.daily_average is not None:
        now, before, basis = point.daily_average, previous.daily_average, "daily_average"
    else:
        return
    point.change_basis = basis
    point.change = now - before
    point.change_percent = percent(now - before, abs(before))


def by_resource(
    scope: dict[str, Any],
    period: Period,
    rows: Rows,
    state: DataState,
    conversion: Conversion | None = None,
) -> ResourceCosts:
    totals: dict[str, ResourceTotal] = {}
    data = []
    for row in rows:
        provider, resource, currency, name, service, net, gross, credits = row[:8]
        total_net, total_gross, total_credits = (v or ZERO for v in row[8:])
        totals[currency] = ResourceTotal(
            currency=currency, amount=total_net, gross_cost=total_gross, credits=total_credits
        )
        data.append(
            ResourceCost(
                provider=provider,
                resource_id=resource,
                resource_name=name,
                service_name=service,
                unattributed=not resource,
                currency=currency,
                amount=net or ZERO,
                gross_cost=gross or ZERO,
                credits=credits or ZERO,
                share_percent=percent(gross or ZERO, total_gross),
            )
        )
    return ResourceCosts(
        **scope,
        period=PeriodPublic.of(period),
        totals=[totals[c] for c in sorted(totals)],
        data=data,
        completeness=state.completeness(period_days(period)),
        conversion=conversion,
    )


def period_days(period: Period) -> list[date]:
    return [period.start + timedelta(days=i) for i in range(period.days)]


def by_type(
    scope: dict[str, Any],
    period: Period,
    rows: Rows,
    state: DataState,
    conversion: Conversion | None = None,
) -> TypeCosts:
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
    return TypeCosts(
        **scope,
        period=PeriodPublic.of(period),
        totals=totals_of(totals),
        data=data,
        completeness=state.completeness(period_days(period)),
        conversion=conversion,
    )


def total(
    scope: dict[str, Any],
    period: Period,
    rows: Rows,
    state: DataState,
    conversion: Conversion | None = None,
) -> TotalCost:
    totals = [CurrencyTotal(currency=c, amount=a, lines=n) for c, a, n in rows]
    lines = sum(t.lines for t in totals)
    return TotalCost(
        **scope,
        period=PeriodPublic.of(period),
        lines=lines,
        totals=totals,
        completeness=state.completeness(period_days(period)),
        conversion=conversion,
    )
