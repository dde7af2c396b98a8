"""Month-end forecast per provider and currency: the month's complete days as stored, plus every
remaining day at the robust recent level with its weekday profile (the anomaly baseline). The
interval is the wider of two: the spread of this series' own errors at the same point of the
previous months (a backtest), and a 90% band of the daily spread over the remaining days."""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from cost_pipelines.assets.analytics.series import Baseline, baseline, money

BACKTEST_MONTHS = 6
Z_90 = Decimal("1.645")
METHOD = "month to date + remaining days x weekday-adjusted median level"


@dataclass(frozen=True)
class Forecast:
    """The month's expected total, with an interval, as of the morning of `today`."""

    month: date
    as_of: date  # the last day counted as complete (the day before `today`)
    days_complete: int  # days of the month with stored costs before `today`
    days_in_month: int
    actual_to_date: Decimal
    forecast: Decimal
    lower: Decimal
    upper: Decimal


def month_bounds(day: date) -> tuple[date, date]:
    first = day.replace(day=1)
    return first, (first + timedelta(days=32)).replace(day=1)


def _remaining(base: Baseline, days: list[date]) -> Decimal:
    return sum((base.expected_on(d) for d in days), Decimal(0))


def _past_errors(history: Mapping[date, Decimal], today: date) -> list[Decimal]:
    """Relative errors of the remaining-days part of forecasts made at the same day of each of
    the previous months that are fully stored."""
    errors = []
    month = today.replace(day=1)
    for _ in range(BACKTEST_MONTHS):
        month = (month - timedelta(days=1)).replace(day=1)
        first, following = month_bounds(month)
        days = [first + timedelta(days=i) for i in range((following - first).days)]
        if any(d not in history for d in days):
            continue
        cut = month.replace(day=min(today.day, len(days)))
        base = baseline({d: v for d, v in history.items() if d < cut}, cut)
        if base is None:
            continue
        rest = [d for d in days if d >= cut]
        predicted = _remaining(base, rest)
        if predicted:
            actual = sum((history[d] for d in rest), Decimal(0))
            errors.append((actual - predicted) / abs(predicted))
    return errors


def month_end_forecast(history: Mapping[date, Decimal], today: date) -> Forecast | None:
    """The forecast for the month of `today` from the days before it (today is still open and
    is forecast, not counted). None without two weeks of history."""
    first, following = month_bounds(today)
    known = {d: v for d, v in history.items() if d < today}
    month_days = [first + timedelta(days=i) for i in range((following - first).days)]
    actual = sum((known[d] for d in month_days if d in known), Decimal(0))
    remaining = [d for d in month_days if d not in known]
    base = baseline(known, today)
    if base is None:
        return None
    expected = _remaining(base, remaining)
    spread = sum((base.spread_on(d) ** 2 for d in remaining), Decimal(0)).sqrt()
    band = Z_90 * spread
    errors = _past_errors(known, today)
    down = max(band, -min(errors, default=Decimal(0)) * abs(expected))
    up = max(band, max(errors, default=Decimal(0)) * abs(expected))
    total = actual + expected
    return Forecast(
        month=first,
        as_of=today - timedelta(days=1),
        days_complete=len(month_days) - len(remaining),
        days_in_month=len(month_days),
        actual_to_date=actual,
        forecast=money(total),
        lower=money(total - down),
        upper=money(total + up),
    )
