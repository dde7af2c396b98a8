"""What clients see of the restatement ledger: per replace and currency, and per changed
(account, day, service, charge category, currency), the amounts before, after and the change."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field

from cost_api.params import ProviderChoice
from cost_api.schemas.costs import Money, OptionalMoney, PeriodPublic


class CostAmounts(BaseModel):
    """Every FOCUS cost column; null where the source supplies none (never BilledCost)."""

    billed_cost: Money
    effective_cost: OptionalMoney
    list_cost: OptionalMoney
    contracted_cost: OptionalMoney


class RestatementChange(BaseModel):
    recorded_at: datetime = Field(
        description="When the new numbers became what readers see (UTC); as_of at or after it "
        "answers with them, before it with the previous ones"
    )
    collection_run_id: str = Field(description="The Dagster run that collected the new numbers")
    provider: str
    billing_account_id: str
    charge_date: date
    service_name: str
    charge_category: str
    currency: str = Field(description="ISO 4217 billing currency of all three amounts")
    lines_before: int
    lines_after: int
    previous: CostAmounts
    new: CostAmounts
    delta: CostAmounts = Field(description="new minus previous (null only where both are null)")
    day_had_ended: bool = Field(
        description="The previous numbers were collected after the day ended: a restatement of "
        "a whole day, not a day still filling up"
    )


class ReplaceTotal(BaseModel):
    """One window replace (one billing account's new load) in one currency: its changes summed."""

    recorded_at: datetime
    collection_run_id: str
    provider: str
    billing_account_id: str
    currency: str
    changes: int = Field(description="Changed (day, service, charge category) rows")
    delta: CostAmounts


class Restatements(BaseModel):
    customer_id: str
    provider: ProviderChoice
    period: PeriodPublic = Field(description="The charge days asked about")
    as_of: datetime | None = Field(
        description="Only what had been recorded by this instant; null: everything recorded"
    )
    replaces: list[ReplaceTotal] = Field(description="Oldest first")
    changes: list[RestatementChange] = Field(
        description="Oldest first, then by provider, account, day, service, charge category"
    )
    count: int = Field(description="Changes in the period (more than listed when over `limit`)")
