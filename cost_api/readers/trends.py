"""Trend buckets: days, ISO weeks (Monday) or months of a period, each saying whether it is
partial (cut by the period, or holding open days), compared by amount when both buckets are whole
and by daily average when either is partial."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from enum import StrEnum
from typing import Any

from cost_api.params import Period
from cost_api.readers.completeness import DataState
from cost_api.readers.shaping import PICO, ZERO, Rows, percent, period_days
from cost_api.schemas.costs import (
    Conversion,
    CostTrends,
    CurrencyTrend,
    PeriodPublic,
    TrendPoint,
)


class Grain(StrEnum):
    """Trend bucket size."""

    day = "day"
    week = "week"
    month = "month"


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
    days = period_days(period)
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
