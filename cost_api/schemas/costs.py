"""What clients of the cost API see. Amounts are exact decimals sent as JSON strings."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, Field, PlainSerializer, WithJsonSchema

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


class LatestItem(BaseModel):
    service_name: str
    resource_id: str
    currency: str
    amount: Money
    lines: int


class LatestCosts(CostScope):
    """The most recent day with data; `day` is null when the customer has no costs yet."""

    day: date | None
    collected_at: datetime | None = Field(description="When that day was last collected (UTC)")
    totals: list[CurrencyAmount]
    items: list[LatestItem]


class TrendPoint(BaseModel):
    bucket: date = Field(description="Start of the day, ISO week (Monday) or month")
    start: date = Field(description="First day of the bucket inside the period")
    end: date = Field(description="Day after the bucket's last day inside the period")
    amount: Money
    change: Money | None = Field(description="Against the previous bucket; null for the first")
    change_percent: Percent = Field(
        description="change / |previous amount| x 100, so a rise is positive even from a "
        "credit (negative) bucket; null for the first bucket and after a zero bucket"
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
    amount: Money
    share_percent: Percent = Field(description="Of this currency's total for the period")


class ResourceCosts(CostScope):
    """The top resources per currency."""

    period: PeriodPublic
    totals: list[CurrencyAmount]
    data: list[ResourceCost]


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


class CurrencyTotal(CurrencyAmount):
    lines: int


class TotalCost(CostScope):
    """The total for the period, per currency."""

    period: PeriodPublic
    lines: int
    totals: list[CurrencyTotal]
