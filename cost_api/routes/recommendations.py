"""The recommendations read: the providers' own commitment advice and our rules' findings in
one list per customer and provider, sortable by estimated monthly saving."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from cost_api.dependencies import CustomerIdDep, WarehouseDep
from cost_api.errors import COST_READS
from cost_api.params import Limit, ProviderChoice, reject_unknown_query
from cost_api.readers.recommendations import RecommendationsReader
from cost_api.schemas.recommendations import Recommendations, RecommendationSort
from cost_pipelines.providers import PROVIDERS

router = APIRouter(
    prefix="/api/v2/costs/{customer_id}", tags=["recommendations"], responses=COST_READS
)


async def recommendations_reader(
    request: Request, warehouse: WarehouseDep
) -> RecommendationsReader:
    reject_unknown_query(request)
    return RecommendationsReader(warehouse)


ReaderDep = Annotated[RecommendationsReader, Depends(recommendations_reader)]


@router.get(
    "/{provider}/recommendations",
    summary="What to buy (the providers' commitment advice) and what to stop (our findings)",
)
def get_recommendations(
    customer_id: CustomerIdDep,
    provider: Annotated[
        ProviderChoice, Path(description=f"{', '.join(PROVIDERS)}, or all of them")
    ],
    reader: ReaderDep,
    sort: Annotated[
        RecommendationSort,
        Query(description="saving_desc (default) or saving_asc: by estimated monthly saving"),
    ] = RecommendationSort.saving_desc,
    limit: Limit = 100,
    offset: Annotated[
        int, Query(ge=0, le=1_000_000, description="Items to skip: `next_offset` of the last page")
    ] = 0,
) -> Recommendations:
    return reader.recommendations(customer_id, provider, sort, limit, offset)
