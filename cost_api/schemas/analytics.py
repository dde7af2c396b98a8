"""What clients see of the analyses: anomalies, month-end forecasts and budget status. Amounts
are exact decimals sent as strings, one currency each."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field

from cost_api.params import ProviderChoice
from cost_api.schemas.costs import Money, PeriodPublic


class AnalysisScope(BaseModel):
    customer_id: str
    computed_at: datetime | None = Field(
        description="When the analysis last ran for this customer (UTC); null: not yet"
    )
    as_of: date | None = Field(description="The open day it ran for: every earlier day counted")


class ResourceAmount(BaseModel):
    resource_id: str = Field(description="Empty for cost without a resource (tax, credits)")
    amount: Money


class AnomalyPublic(BaseModel):
    day: date
    provider: str
    service_name: str
    currency: str
    actual: Money
    expected: Money = Field(description="The day's weekday-adjusted recent level")
    lower: Money = Field(description="Lower edge of the band around `expected`")
    upper: Money = Field(description="Upper edge of the band around `expected`")
    deviation: Money = Field(description="actual - expected")
    score: float = Field(description="|deviation| / half the band's width (above 1: outside)")
    estimated: bool = Field(description="Some lines of the day are still the provider's estimate")
    lines: int = Field(description="Stored cost lines of the service on that day")
    top_resources: list[ResourceAmount] = Field(description="The day's costliest resources")
    lines_url: str = Field(description="The day's stored lines of this provider (`/metrics`)")


class Anomalies(AnalysisScope):
    """Anomalous days per provider, service and currency in the period, newest first."""

    provider: ProviderChoice
    period: PeriodPublic
    data: list[AnomalyPublic]


class ForecastPublic(BaseModel):
    provider: str
    currency: str
    month: date = Field(description="First day of the forecast month")
    days_complete: int = Field(description="Days of the month counted as they are stored")
    days_in_month: int
    actual_to_date: Money = Field(description="Cost of the complete days of the month")
    forecast: Money = Field(description="Expected month-end total")
    lower: Money = Field(description="Lower end of the interval")
    upper: Money = Field(description="Upper end of the interval")
    method: str


class Forecasts(AnalysisScope):
    """The month-end forecast per provider and currency."""

    provider: ProviderChoice
    data: list[ForecastPublic]


class BudgetPublic(BaseModel):
    budget: str = Field(description="The budget's name, or `<provider|all>-<currency>`")
    provider: str = Field(description="A provider, or `all`")
    currency: str
    month: date
    amount: Money = Field(description="The monthly budget")
    actual: Money = Field(description="The month's cost so far (today's lines included)")
    forecast: Money = Field(description="The month-end forecast")
    thresholds: list[int] = Field(description="Alert thresholds, percent of the budget")
    crossed_actual: list[int] = Field(description="Thresholds the cost so far has reached")
    crossed_forecast: list[int] = Field(description="Thresholds the forecast reaches")


class Budgets(AnalysisScope):
    """Each monthly budget of the customer against cost so far and forecast."""

    data: list[BudgetPublic]
