"""What clients of the cost API see. Amounts are exact decimals sent as JSON strings."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, Field, PlainSerializer, WithJsonSchema
from typing_extensions import TypedDict

from cost_api.params import CostMetric, Period, ProviderChoice


def decimal_text(value: Decimal) -> str:
    """Plain decimal notation without trailing zeros: never an exponent, never a float."""
    if value.is_zero():
        return "0"
    text = format(value.normalize(), "f")
    return text


# JSON numbers are read as binary floats by most clients, which would round costs like
# 0.0000001; a string carries the stored Decimal(38, 12) exactly.
Money = Annotated[
    Decimal,
    PlainSerializer(decimal_text, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^-?[0-9]+(\.[0-9]+)?$",
            "description": "Exact decimal amount as a string (no float rounding)",
            "examples": ["1234.5", "0.0000001"],
        },
        mode="serialization",
    ),
]
# A cost column some sources do not supply (Cost Explorer has no list price): null, never a copy
# of BilledCost.
OptionalMoney = Annotated[
    Decimal | None,
    PlainSerializer(
        lambda v: None if v is None else decimal_text(v), return_type=str | None, when_used="json"
    ),
    WithJsonSchema(
        {
            "anyOf": [{"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]+)?$"}, {"type": "null"}],
            "description": "Exact decimal amount as a string; null when the source has none",
        },
        mode="serialization",
    ),
]
Percent = Annotated[
    Decimal | None,
    PlainSerializer(
        lambda v: None if v is None else decimal_text(v), return_type=str | None, when_used="json"
    ),
    WithJsonSchema(
        {
            "anyOf": [{"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]+)?$"}, {"type": "null"}],
            "description": "Percent rounded half-even to 2 decimals; null when undefined",
        },
        mode="serialization",
    ),
]


class PeriodPublic(BaseModel):
    start: date = Field(description="First day (UTC, inclusive)")
    end: date = Field(description="Day after the last day (UTC, exclusive)")
    days: int

    @classmethod
    def of(cls, period: Period) -> PeriodPublic:
        return cls(start=period.start, end=period.end, days=period.days)


class CostScope(BaseModel):
    """Which costs an answer is about."""

    customer_id: str
    provider: ProviderChoice
    cost_metric: CostMetric


class CurrencyAmount(BaseModel):
    currency: str = Field(description="ISO 4217 code; amounts never add across currencies")
    amount: Money


class CostLine(BaseModel):
    day: date
    provider: str
    billing_account_id: str
    service_name: str
    resource_id: str
    region_id: str
    charge_category: str
    billed_cost: Money
    effective_cost: OptionalMoney = Field(description="null: the source does not supply it")
    list_cost: OptionalMoney = Field(description="null: the source does not supply it")
    contracted_cost: OptionalMoney = Field(description="null: the source does not supply it")
    currency: str


class CostLinesPage(CostScope):
    """One page of stored cost lines, newest first."""

    period: PeriodPublic
    data: list[CostLine]
    count: int = Field(description="Lines in the whole period, over all pages")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null at end")


class CheckPublic(BaseModel):
    """The newest evaluation of one asset check of this customer's costs from one provider."""

    name: str = Field(description="focus_conformance or reconciles_with_provider")
    passed: bool
    status: str = Field(description="Dagster's execution status: SUCCEEDED, FAILED, ...")
    severity: str | None = Field(description="ERROR or WARN")
    evaluated_at: datetime


class ProviderCompleteness(BaseModel):
    """How far one provider's data in this answer can be trusted, without another call."""

    provider: str
    last_complete_day: date | None = Field(
        description="The provider's newest complete day (UTC): every billing account's current "
        "load of that day was collected after the day ended, and either the provider already "
        "has cost on a later day or the collection came a full day after the day ended "
        "(providers publish a day within 24 h). Later days are still open. null: none yet"
    )
    last_collected_at: datetime | None = Field(
        description="When this provider's costs of this customer were last collected (UTC)"
    )
    estimated_days: int = Field(
        description="Days of the answer's period with at least one estimated line "
        "(x_Estimated: the provider marks it estimated, or its billing period is still open)"
    )
    open_days: int = Field(
        description="Days of the answer's period not complete for this provider: today, later "
        "days, and collected days after last_complete_day"
    )
    checks_passed: bool | None = Field(
        description="Whether the newest evaluation of every asset check passed; null when "
        "unknown (Dagster unreachable, or no check evaluated yet)"
    )
    checks: list[CheckPublic] | None = Field(
        description="The newest evaluation of each asset check of the provider's collection "
        "for this customer (cached up to COST_API_CHECKS_TTL_S); null when Dagster could not "
        "be asked in time"
    )


class ConversionRate(BaseModel):
    currency: str = Field(description="ISO 4217 code")
    rate: Money = Field(description="Units of `currency` per 1 unit of `base`")
    rate_date: date = Field(
        description="basis=day: the publication day of the rate; basis=month: the first day of "
        "the month whose published rates are averaged"
    )
    published_days: int = Field(description="Daily rates the rate is made of (1 for basis=day)")


class Conversion(BaseModel):
    """How the amounts of this answer were converted from their billing currencies."""

    currency: str = Field(description="The currency every amount of this answer is in")
    basis: str = Field(
        description="day: each charge day uses the newest rate published on or before it, at "
        "most COST_API_RATE_MAX_AGE_DAYS (7) days old; month: each charge day uses the "
        "arithmetic mean of the rates published in its calendar month (so far, for the current "
        "month), rounded half-even to 12 decimals (deployment setting COST_API_RATE_BASIS)"
    )
    base: str = Field(description="The currency the stored rates are quoted against (EUR)")
    rates: list[ConversionRate] = Field(
        description="Every rate used. An amount in X becomes amount x rate(target) / rate(X) "
        "(the base at 1): the factor is computed to 24 decimals (truncated), amounts are "
        "multiplied exactly and every returned sum is rounded half-even to 12 decimals"
    )


# A dict, not a model: a day has thousands of items (why and what it saves: shaping.latest).
class LatestItem(TypedDict):
    """The day's cost of one service and resource in one billing currency."""

    service_name: str
    resource_id: str
    currency: str
    amount: Money
    lines: int


class ProviderLatest(BaseModel):
    """One provider's newest complete day with cost."""

    provider: str
    day: date = Field(
        description="The provider's newest complete day with cost (see completeness); the "
        "newest day with cost when it has no complete one yet (then complete is false)"
    )
    complete: bool
    estimated: bool = Field(description="Some of the day's lines are estimated (x_Estimated)")
    collected_at: datetime | None = Field(description="When that day was last collected (UTC)")
    open_day: date | None = Field(
        description="The provider's newest day with cost when it is later than `day` and still "
        "open (e.g. today's first hours from Cost Explorer); null otherwise"
    )
    totals: list[CurrencyAmount]
    items: list[LatestItem]


class LatestCosts(CostScope):
    """Per provider, its own newest complete day: one entry per provider with cost."""

    providers: list[ProviderLatest] = Field(description="[] when there is no cost yet")
    completeness: list[ProviderCompleteness]
    conversion: Conversion | None = Field(description="null: amounts in billing currency")


class TrendPoint(BaseModel):
    bucket: date = Field(description="Start of the day, ISO week (Monday) or month")
    start: date = Field(description="First day of the bucket inside the period")
    end: date = Field(description="Day after the bucket's last day inside the period")
    days: int = Field(description="Days of the bucket inside the period")
    open_days: int = Field(
        description="Of those, days not complete for some provider of the answer (today, "
        "later days, or collected after that provider's last complete day)"
    )
    estimated_days: int = Field(description="Of those, days with estimated lines")
    partial: bool = Field(
        description="The period cuts the bucket, or it has open days: its amount is not a "
        "whole bucket's"
    )
    amount: Money
    daily_average: Money | None = Field(
        description="The amount of the bucket's complete days divided by their number, rounded "
        "half-even to 12 decimals; null when every day of it is open"
    )
    change_basis: str | None = Field(
        description="total: both buckets are whole, change compares amounts; daily_average: "
        "one of them is partial, change compares daily averages (never a whole bucket against "
        "a partial one); null for the first bucket or when an average is missing"
    )
    change: Money | None = Field(
        description="Against the previous bucket, on change_basis; null when change_basis is"
    )
    change_percent: Percent = Field(
        description="change / |previous amount or average| x 100, so a rise is positive even "
        "from a credit (negative) bucket; null when change is, or after a zero"
    )


class CurrencyTrend(BaseModel):
    currency: str
    total: Money
    points: list[TrendPoint]


class CostTrends(CostScope):
    """Cost per bucket, every bucket present, one series per currency."""

    period: PeriodPublic
    group_by: str
    series: list[CurrencyTrend] = Field(
        description="One series per currency with cost in the period, every bucket present. "
        "A period without any cost gives one all-zero series per currency this customer and "
        "provider have in any period; `[]` only when they have no cost at all yet (there is no "
        "currency to state the zeros in)."
    )
    completeness: list[ProviderCompleteness]
    conversion: Conversion | None = Field(description="null: amounts in billing currency")


class ResourceCost(BaseModel):
    provider: str
    resource_id: str = Field(
        description="Empty for cost without a resource (tax, support, account-level credits, "
        "sources without resource ids): such cost is one row per service, never folded into "
        "another service's name"
    )
    resource_name: str
    service_name: str = Field(
        description="The service of the resource, or of the unattributed cost"
    )
    unattributed: bool = Field(description="True for the cost of a service that has no resource")
    currency: str
    amount: Money = Field(description="Net: gross_cost + credits")
    gross_cost: Money = Field(description="Sum of the row's positive lines")
    credits: Money = Field(
        description="Sum of the row's negative lines (credits, refunds, corrections): <= 0"
    )
    share_percent: Percent = Field(
        description="gross_cost / the currency's gross_cost total x 100: shares of all rows of "
        "a currency add up to 100 (before rounding); credits never make a share negative or "
        "push the sum past 100; null when the gross total is zero"
    )


class ResourceTotal(CurrencyAmount):
    """A currency's totals over every row (not only the ones returned): amount is the net."""

    gross_cost: Money = Field(description="Sum of all positive lines: the share denominator")
    credits: Money = Field(description="Sum of all negative lines")


class ResourceCosts(CostScope):
    """The top resources per currency, by net amount."""

    period: PeriodPublic
    totals: list[ResourceTotal]
    data: list[ResourceCost]
    completeness: list[ProviderCompleteness]
    conversion: Conversion | None = Field(description="null: amounts in billing currency")


class ServiceCost(BaseModel):
    service_name: str
    amount: Money


class CategoryCost(BaseModel):
    service_category: str = Field(description="FOCUS ServiceCategory: Compute, Storage, ...")
    currency: str
    amount: Money
    share_percent: Percent
    services: list[ServiceCost]


class TypeCosts(CostScope):
    """Cost by FOCUS service category, per currency."""

    period: PeriodPublic
    totals: list[CurrencyAmount]
    data: list[CategoryCost]
    completeness: list[ProviderCompleteness]
    conversion: Conversion | None = Field(description="null: amounts in billing currency")


class CurrencyTotal(CurrencyAmount):
    lines: int


class TotalCost(CostScope):
    """The total for the period, per currency."""

    period: PeriodPublic
    lines: int
    totals: list[CurrencyTotal]
    completeness: list[ProviderCompleteness]
    conversion: Conversion | None = Field(description="null: amounts in billing currency")
