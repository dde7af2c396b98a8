"""What clients see of the recommendations: one list across the providers' own advice and ours,
each with its estimated monthly saving in one currency (an exact decimal string) and the
evidence behind it."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field

from cost_api.params import ProviderChoice
from cost_api.schemas.costs import CurrencyAmount, OptionalMoney


class RecommendationSort(StrEnum):
    """The order of the list: still-valid recommendations first, each part by estimated monthly
    saving (within a currency the amounts compare; across currencies the order is by the
    number)."""

    saving_desc = "saving_desc"
    saving_asc = "saving_asc"


class RecommendationPublic(BaseModel):
    id: str = Field(description="Stable across runs: kind, scope and what it is about")
    kind: str = Field(
        description="savings_plan, reserved_instance, reservation, committed_use_discount "
        "(the providers'), idle_resource, low_commitment_utilisation, growing_service (ours)"
    )
    origin: Literal["provider", "own"] = Field(
        description="provider: the provider's own recommendation API; own: our rules over the "
        "stored costs"
    )
    source: str = Field(
        description="aws_cost_explorer, azure_consumption, gcp_recommender or cost_pipelines"
    )
    source_id: str = Field(description="The source's identifier of the recommendation")
    provider: str
    scope: str = Field(description="Account scope, project/location, resource or service")
    resource_id: str = Field(description="Resource, instance type or commitment it is about")
    term: str = Field(description="Commitment term as the provider names it; empty for ours")
    payment_option: str
    lookback: str = Field(description="Usage period the recommendation looked at")
    estimated_monthly_saving: CurrencyAmount = Field(
        description="In the source's currency, exactly as computed or answered"
    )
    upfront_cost: OptionalMoney = Field(description="null: nothing to pay upfront or not given")
    break_even_months: OptionalMoney = Field(description="null: not given by the source")
    evidence: Any = Field(
        description="The provider's own figures, or the stored lines and figures our rule used"
    )
    first_seen: datetime = Field(description="When this recommendation (by id) was first made")
    computed_at: datetime = Field(description="When the run that listed it last ran")
    fetched_at: datetime = Field(description="When the provider generated it (ours: computed)")
    still_valid: bool = Field(
        description="true: made by the latest run and, for the provider's, still open; false: "
        "the run before made it and the latest no longer does (a resource gone, a commitment "
        "now used), or the provider marks it dismissed, claimed or done"
    )


class RecommendationSourcePublic(BaseModel):
    provider: str
    source: str
    status: str = Field(description="When it was last asked, or why it never is")
    computed_at: datetime | None


class Recommendations(BaseModel):
    """Every recommendation of the customer for the provider(s), sorted by saving."""

    customer_id: str
    provider: ProviderChoice
    as_of: date | None = Field(description="The open day our own rules last ran for")
    sort: RecommendationSort
    sources: list[RecommendationSourcePublic] = Field(
        description="Each recommendation source of the provider(s) and its state"
    )
    total_monthly_saving: list[CurrencyAmount] = Field(
        description="Still-valid recommendations' savings per currency (several may overlap)"
    )
    count: int = Field(description="All matching recommendations (this page has `limit`)")
    next_offset: int | None = Field(description="Pass as `offset` for the next page; null at end")
    data: list[RecommendationPublic]
