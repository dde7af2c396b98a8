"""Cost anomalies: days whose cost departs from the recent, weekday-adjusted level by more than a
robust threshold (median +- k x 1.4826 x MAD, with relative and absolute floors so a flat series
with zero spread does not flag every cent)."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from cost_pipelines.assets.analytics.series import Baseline, DayCost, SeriesKey, baseline, money


@dataclass(frozen=True)
class Rule:
    """The threshold: |actual - expected| > max(k x spread, relative x |expected|, minimum)."""

    k: Decimal = Decimal("3.5")  # the modified z-score cut-off of Iglewicz and Hoaglin
    relative: Decimal = Decimal("0.25")
    minimum: Decimal = Decimal("1")  # in the series' currency
    window_days: int = 56
    level_days: int = 7
    min_history_days: int = 14

    def band(self, base: Baseline, day: date) -> Decimal:
        expected = base.expected_on(day)
        return max(self.k * base.spread_on(day), self.relative * abs(expected), self.minimum)


@dataclass(frozen=True)
class Anomaly:
    """One anomalous day of one series, with what it was expected to cost."""

    provider: str
    service: str
    currency: str
    day: date
    actual: Decimal
    expected: Decimal
    lower: Decimal
    upper: Decimal
    estimated: bool
    lines: int

    @property
    def deviation(self) -> Decimal:
        return self.actual - self.expected

    @property
    def score(self) -> float:
        """The deviation in units of the band's half-width (above 1 = outside the band)."""
        half = (self.upper - self.lower) / 2
        return float(abs(self.deviation) / half) if half else float("inf")


DEFAULT_RULE = Rule()


def detect(
    key: SeriesKey,
    days: Mapping[date, DayCost],
    evaluate: Iterable[date],
    rule: Rule = DEFAULT_RULE,
) -> list[Anomaly]:
    """The anomalous days among `evaluate` of one series; each day is judged against the days
    before it only (as it would have been on the next morning). A run of days outside the band
    in the same direction is one episode, reported on its first day: a step to a new level (a
    new resource) is one anomaly, not one a day until the level has caught up."""
    history = {day: cost.amount for day, cost in days.items()}
    found = []
    previous: tuple[date, int] | None = None  # the last day outside the band, and its side
    for day in evaluate:
        cost = days.get(day)
        if cost is None:
            continue
        base = baseline(
            history,
            day,
            window_days=rule.window_days,
            level_days=rule.level_days,
            min_days=rule.min_history_days,
        )
        if base is None:
            continue
        band = rule.band(base, day)
        expected = base.expected_on(day)
        deviation = cost.amount - expected
        if abs(deviation) <= band:
            continue
        side = 1 if deviation > 0 else -1
        continuing = previous == (day - timedelta(days=1), side)
        previous = (day, side)
        if not continuing:
            provider, service, currency = key
            found.append(
                Anomaly(
                    provider,
                    service,
                    currency,
                    day,
                    cost.amount,
                    money(expected),
                    money(expected - band),
                    money(expected + band),
                    cost.estimated,
                    cost.lines,
                )
            )
    return found
