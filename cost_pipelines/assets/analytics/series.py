"""Daily cost series per customer, read from the current lines, and the robust statistics the
analyses share: median, MAD and a weekday profile, all in exact Decimals."""

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from statistics import median

from clickhouse_connect.driver.client import Client

# 1.4826 x MAD estimates the standard deviation of normal noise, robust to outliers.
MAD_SCALE = Decimal("1.4826")
QUANTUM = Decimal("1e-12")  # what the warehouse's Decimal(38, 12) keeps

DAILY_SQL = """
SELECT provider, ServiceName, BillingCurrency, toDate(ChargePeriodStart) AS day,
       sum(BilledCost), count(), max(x_Estimated)
FROM costs_current(customer_id = {customer_id:String})
WHERE ChargePeriodStart >= {start:DateTime('UTC')} AND ChargePeriodStart < {end:DateTime('UTC')}
GROUP BY provider, ServiceName, BillingCurrency, day
ORDER BY provider, ServiceName, BillingCurrency, day
"""

SeriesKey = tuple[str, str, str]  # provider, service, currency


@dataclass(frozen=True)
class DayCost:
    """One day of one series: BilledCost summed, its lines, whether any line is an estimate."""

    amount: Decimal
    lines: int = 0
    estimated: bool = False


Series = Mapping[date, DayCost]


def read_daily(
    client: Client, customer_id: str, start: date, end: date
) -> dict[SeriesKey, dict[date, DayCost]]:
    """Every (provider, service, currency) series of the customer over [start, end). A day the
    provider has costs for but a service of it has none counts as zero for that service (from
    the service's first day on); a day the provider has nothing stored for stays unknown."""
    params = {
        "customer_id": customer_id,
        "start": datetime.combine(start, datetime.min.time()),
        "end": datetime.combine(end, datetime.min.time()),
    }
    rows = client.query(DAILY_SQL, parameters=params).result_rows
    series: dict[SeriesKey, dict[date, DayCost]] = defaultdict(dict)
    covered: dict[str, set[date]] = defaultdict(set)
    for provider, service, currency, day, amount, lines, estimated in rows:
        series[(provider, service, currency)][day] = DayCost(
            Decimal(amount), int(lines), bool(estimated)
        )
        covered[provider].add(day)
    for (provider, _, _), days in series.items():
        first = min(days)
        for day in covered[provider]:
            if day > first and day not in days:
                days[day] = DayCost(Decimal(0))
    return {key: dict(sorted(days.items())) for key, days in sorted(series.items())}


def by_provider_and_currency(
    series: Mapping[SeriesKey, Series],
) -> dict[tuple[str, str], dict[date, Decimal]]:
    """The services of each provider and currency summed per day."""
    out: dict[tuple[str, str], dict[date, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for (provider, _, currency), days in series.items():
        for day, cost in days.items():
            out[(provider, currency)][day] += cost.amount
    return {key: dict(sorted(days.items())) for key, days in sorted(out.items())}


@dataclass(frozen=True)
class Baseline:
    """What a day is expected to cost from the days before it, and the spread around that."""

    level: Decimal  # the weekday-adjusted recent median
    profile: "WeekdayProfile"
    spread_adjusted: Decimal  # 1.4826 x MAD of the weekday-adjusted history
    history_days: int

    def expected_on(self, day: date) -> Decimal:
        return self.profile.apply(self.level, day.weekday())

    def spread_on(self, day: date) -> Decimal:
        return self.profile.scale(self.spread_adjusted, day.weekday())


@dataclass(frozen=True)
class WeekdayProfile:
    """How each weekday differs from the median day: as a factor when the series is positive
    (a weekend dip stays proportional after a step to a new level), else as an offset (credits,
    zero days). Weekdays seen fewer than twice are neutral."""

    multiplicative: bool
    by_weekday: Mapping[int, Decimal]

    def adjust(self, value: Decimal, weekday: int) -> Decimal:
        effect = self.by_weekday[weekday]
        return value / effect if self.multiplicative else value - effect

    def apply(self, level: Decimal, weekday: int) -> Decimal:
        effect = self.by_weekday[weekday]
        return level * effect if self.multiplicative else level + effect

    def scale(self, spread: Decimal, weekday: int) -> Decimal:
        return spread * self.by_weekday[weekday] if self.multiplicative else spread


def weekday_profile(past: Sequence[tuple[date, Decimal]]) -> WeekdayProfile:
    overall = median([v for _, v in past])
    per_day: dict[int, list[Decimal]] = defaultdict(list)
    for day, value in past:
        per_day[day.weekday()].append(value)
    medians = {w: median(per_day[w]) for w in range(7) if len(per_day[w]) >= 2}
    if overall > 0 and all(m > 0 for m in medians.values()):
        return WeekdayProfile(True, {w: medians.get(w, overall) / overall for w in range(7)})
    return WeekdayProfile(False, {w: medians.get(w, overall) - overall for w in range(7)})


def baseline(
    history: Mapping[date, Decimal],
    day: date,
    *,
    window_days: int = 56,
    level_days: int = 14,
    min_days: int = 14,
) -> Baseline | None:
    """The expected cost of `day` from the `window_days` before it: a weekday profile from the
    whole window, the level from the median of the last `level_days` weekday-adjusted days (it
    follows growth and new resources), the spread from the MAD of the adjusted window. None with
    fewer than `min_days` known days."""
    start = day - timedelta(days=window_days)
    past = [(d, v) for d, v in history.items() if start <= d < day]
    if len(past) < min_days:
        return None
    profile = weekday_profile(past)
    adjusted = [(d, profile.adjust(v, d.weekday())) for d, v in past]
    recent_from = day - timedelta(days=level_days)
    recent = [v for d, v in adjusted if d >= recent_from] or [v for _, v in adjusted]
    centre = median([v for _, v in adjusted])
    mad = median([abs(v - centre) for _, v in adjusted])
    return Baseline(median(recent), profile, MAD_SCALE * mad, len(past))


def money(value: Decimal) -> Decimal:
    """Rounded to what the warehouse stores."""
    return value.quantize(QUANTUM)
