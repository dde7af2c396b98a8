"""GET /api/v2/costs/{customer_id}/{provider}/restatements: what window replaces changed in a
charge period, when, and by how much, per currency."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from cost_api.dependencies import CustomerIdDep, WarehouseDep
from cost_api.errors import COST_READS
from cost_api.params import AsOfDep, Limit, PeriodAsOfDep, ProviderChoice, reject_unknown_query
from cost_api.readers.restatements import RestatementReader
from cost_api.schemas.restatements import Restatements
from cost_pipelines.providers import PROVIDERS

router = APIRouter(
    prefix="/api/v2/costs/{customer_id}/{provider}",
    tags=["costs"],
    responses=COST_READS,
    dependencies=[Depends(reject_unknown_query)],
)


@router.get(
    "/restatements",
    summary="What re-collection changed in the period's charge days, when, and by how much",
    description="Every window replace compares the numbers readers saw with the new ones per "
    "billing account, day, service, charge category and currency, and records where any cost "
    "column changed (first collections restate nothing). `changes` lists them with the "
    "previous and new amounts of every cost column and the difference; `replaces` sums each "
    "replace's changes per currency. `as_of` answers with what had been recorded by then.",
)
def get_restatements(
    customer_id: CustomerIdDep,
    provider: Annotated[
        ProviderChoice, Path(description=f"{', '.join(PROVIDERS)}, or all of them")
    ],
    period: PeriodAsOfDep,
    warehouse: WarehouseDep,
    as_of: AsOfDep,
    limit: Limit = 1000,
) -> Restatements:
    reader = RestatementReader(warehouse, customer_id, provider, as_of)
    return reader.restatements(period, limit=limit)
