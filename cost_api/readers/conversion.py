"""Currency conversion at read time: amounts stay stored in their billing currency, and a read
asked for `currency=XXX` multiplies each line by the factor of its charge day in SQL.

Every read has two fixed SQL texts, rendered once at import from one template: the native one
(amounts per billing currency) and the converted one (a `WITH` prefix that picks the rates, and
the lines joined to their day's factor). The request only chooses between them and binds values.

Rates come from `exchange_rates` (`rate` units of `currency` per 1 unit of `base`, the newest
`loaded_at` of a day winning). X -> Y is rate(Y) / rate(X), the base at 1:
- basis `day`: the newest rate published on or before the charge day, at most `max_age` days old
  (the ECB publishes none on weekends and TARGET holidays: Good Friday to Easter Monday is the
  longest gap, 4 days);
- basis `month`: the mean of the rates published in the charge day's calendar month (so far, for
  the current month), rounded half-even to 12 decimals, like the ECB's monthly average series.
A charge day without a usable rate is refused (422 naming `currency`, the currency and the day),
never converted at 1.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, Literal

from cost_api.errors import InvalidParameter
from cost_api.schemas.costs import Conversion, ConversionRate

RateBasis = Literal["day", "month"]

# The lines a read aggregates, with `amount` (the cost column, converted or not) and `currency`.
_NATIVE_LINES = """(
    SELECT *, {metric:Identifier} AS amount, BillingCurrency AS currency
    FROM costs_current(customer_id = {customer_id:String})
    WHERE @WHERE@
)"""
_CONVERTED_LINES = """(
    SELECT l.*, toDecimal256(l.metric_amount, 12) * f.factor AS amount,
           {target:String} AS currency
    FROM (
        SELECT *, {metric:Identifier} AS metric_amount, toDate(ChargePeriodStart) AS charge_day
        FROM costs_current(customer_id = {customer_id:String})
        WHERE @WHERE@
    ) AS l
    INNER JOIN factors AS f ON f.fday = l.charge_day AND f.fcurrency = l.BillingCurrency
)"""
# The same over the daily sums (cost_daily: one row per account, day, load, currency and
# service, the cost columns summed under their own names). A converted sum is the sum of the
# converted lines to the last digit: the factor is the day's, and the products are exact.
_NATIVE_DAILY = """(
    SELECT *, {metric:Identifier} AS amount, BillingCurrency AS currency
    FROM cost_daily_current(customer_id = {customer_id:String})
    WHERE @WHERE@
)"""
_CONVERTED_DAILY = """(
    SELECT l.*, toDecimal256(l.metric_amount, 12) * f.factor AS amount,
           {target:String} AS currency
    FROM (
        SELECT *, {metric:Identifier} AS metric_amount
        FROM cost_daily_current(customer_id = {customer_id:String})
        WHERE @WHERE@
    ) AS l
    INNER JOIN factors AS f ON f.fday = l.charge_date AND f.fcurrency = l.BillingCurrency
)"""

# Rates of the base, deduplicated (ReplacingMergeTree: the newest load of a day wins; a stored
# rate of the base against itself is ignored: the base is at exactly 1 below), the rate
# in force on every day of the read's calendar for the chosen basis, and each billing currency's
# factor into the target (the target itself at exactly 1, whether or not rates exist).
_CONVERSION_CTES = """WITH
rates AS (
    SELECT currency, rate_date, argMax(rate, loaded_at) AS rate
    FROM exchange_rates
    WHERE base = {base:String} AND currency != {base:String}
      AND rate_date >= {rates_from:Date} AND rate_date < {rates_to:Date}
    GROUP BY currency, rate_date
    HAVING rate > 0
),
calendar AS (
    SELECT toDate({first_day:Date} + number) AS day, toStartOfMonth(day) AS month
    FROM numbers({days:UInt32})
),
by_day AS (
    SELECT c.day AS day, c.currency AS currency, r.rate_date AS rate_date, r.rate AS rate,
           toUInt64(1) AS published_days
    FROM (SELECT day, currency FROM calendar CROSS JOIN (SELECT DISTINCT currency FROM rates) AS k)
        AS c
    ASOF INNER JOIN rates AS r ON c.currency = r.currency AND c.day >= r.rate_date
    WHERE dateDiff('day', r.rate_date, c.day) <= {max_age:UInt16}
),
by_month AS (
    SELECT c.day AS day, m.currency AS currency, m.month AS rate_date, m.rate AS rate,
           m.published_days AS published_days
    FROM calendar AS c
    INNER JOIN (
        SELECT currency, toStartOfMonth(rate_date) AS month,
               toDecimal128(roundBankers(toDecimal256(sum(rate), 24) / count(), 12), 12) AS rate,
               count() AS published_days
        FROM rates
        GROUP BY currency, month
    ) AS m ON c.month = m.month
),
picked AS (
    SELECT day, currency, rate_date, rate, published_days FROM by_day WHERE NOT {monthly:Bool}
    UNION ALL
    SELECT day, currency, rate_date, rate, published_days FROM by_month WHERE {monthly:Bool}
    UNION ALL
    SELECT day, {base:String}, day, toDecimal128(1, 12), toUInt64(1) FROM calendar
),
factors AS (
    SELECT x.day AS fday, x.currency AS fcurrency, toDecimal256(y.rate, 24) / x.rate AS factor
    FROM picked AS x
    INNER JOIN (SELECT * FROM picked WHERE currency = {target:String}) AS y ON x.day = y.day
    WHERE x.currency != {target:String}
    UNION ALL
    SELECT day, {target:String}, toDecimal256(1, 24) FROM calendar
)
"""

_MONEY = re.compile(r"@MONEY\((.*?)\)@")


def render(template: str, where: str, *, converted: bool) -> str:
    """The fixed SQL text of a read: `@LINES@` becomes its lines (`@DAILY@` the daily sums),
    `@MONEY(sum(...))@` a sum of amounts (rounded half-even to 12 decimals when converted),
    `@WHERE@` the lines' filter."""
    if converted:
        text = _CONVERSION_CTES + template.replace("@LINES@", _CONVERTED_LINES)
        text = text.replace("@DAILY@", _CONVERTED_DAILY)
        text = _MONEY.sub(r"toDecimal128(roundBankers(\1, 12), 12)", text)
    else:
        text = template.replace("@LINES@", _NATIVE_LINES).replace("@DAILY@", _NATIVE_DAILY)
        text = _MONEY.sub(r"\1", text)
    return text.replace("@WHERE@", where)


def texts(template: str, where: str) -> dict[bool, str]:
    """Both fixed texts of a read, keyed by `converted`."""
    return {flag: render(template, where, converted=flag) for flag in (False, True)}


# What a converted read needs: each (charge day, billing currency) of its lines with the rate of
# that currency and of the target picked for the day (currency '' when none is usable).
RATES_CHECK_TEMPLATE = """
SELECT n.day, n.currency, x.currency, x.rate_date, x.rate, x.published_days,
       y.currency, y.rate_date, y.rate, y.published_days
FROM (
    SELECT DISTINCT toDate(ChargePeriodStart) AS day, BillingCurrency AS currency
    FROM costs_current(customer_id = {customer_id:String})
    WHERE @WHERE@
) AS n
LEFT JOIN picked AS x ON x.day = n.day AND x.currency = n.currency
LEFT JOIN (SELECT * FROM picked WHERE currency = {target:String}) AS y ON y.day = n.day
ORDER BY n.day, n.currency
"""


DAILY_RATES_CHECK_TEMPLATE = RATES_CHECK_TEMPLATE.replace(
    "toDate(ChargePeriodStart) AS day", "charge_date AS day"
).replace("FROM costs_current(", "FROM cost_daily_current(")


def rates_check_text(where: str, *, daily: bool = False) -> str:
    """The rates check of a read over the lines (or, `daily`, over the daily sums)."""
    template = DAILY_RATES_CHECK_TEMPLATE if daily else RATES_CHECK_TEMPLATE
    return _CONVERSION_CTES + template.replace("@WHERE@", where)


@dataclass(frozen=True)
class ConversionRequest:
    """`currency=` of a read, with the deployment's rate rules."""

    currency: str
    basis: RateBasis = "day"
    base: str = "EUR"
    max_age_days: int = 7

    def bind(self, first_day: date, after_day: date) -> dict[str, Any]:
        """Values of the conversion CTEs for lines of the days [first_day, after_day)."""
        month_end = (after_day.replace(day=1) + timedelta(days=32)).replace(day=1)
        return {
            "target": self.currency,
            "base": self.base,
            "rates_from": min(
                first_day - timedelta(days=self.max_age_days), first_day.replace(day=1)
            ),
            "rates_to": month_end,
            "first_day": first_day,
            "days": (after_day - first_day).days,
            "max_age": self.max_age_days,
            "monthly": self.basis == "month",
        }

    def conversion(self, rows: Any) -> Conversion:
        """The rates used, from the rates check's rows; refuses a day without a usable rate."""
        used: dict[tuple[str, date], ConversionRate] = {}
        missing: list[tuple[str, date]] = []
        for day, currency, *sides in rows:
            if currency == self.currency:
                continue  # already in the target: factor 1, no rate needed
            for wanted, (found, rate_date, rate, published) in (
                (currency, sides[0:4]),
                (self.currency, sides[4:8]),
            ):
                if not found:
                    missing.append((wanted, day))
                elif found != self.base:
                    used[found, rate_date] = ConversionRate(
                        currency=found,
                        rate=Decimal(rate),
                        rate_date=rate_date,
                        published_days=int(published),
                    )
        if missing:
            raise self.no_rate(sorted(set(missing), key=lambda m: (m[1], m[0])))
        return Conversion(
            currency=self.currency,
            basis=self.basis,
            base=self.base,
            rates=sorted(used.values(), key=lambda r: (r.currency, r.rate_date)),
        )

    def no_rate(self, missing: list[tuple[str, date]]) -> InvalidParameter:
        currency, day = missing[0]
        if self.basis == "month":
            rule = f"no {currency} rate against {self.base} was published in {day:%Y-%m}"
        else:
            rule = (
                f"no {currency} rate against {self.base} was published on {day} or in the "
                f"{self.max_age_days} days before"
            )
        more = f" ({len(missing) - 1} more currency-days lack one)" if len(missing) > 1 else ""
        return InvalidParameter(
            "currency", f"cannot convert into {self.currency}: {rule}{more}", self.currency
        )
