"""The analyses' reads: anomalies and month-end forecasts per provider, budgets per customer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request

from cost_api.dependencies import CustomerIdDep, WarehouseDep
from cost_api.errors import COST_READS
from cost_api.params import PeriodDep, ProviderChoice, reject_unknown_query
from cost_api.readers.analytics import AnalyticsReader
from cost_api.schemas.analytics import Anomalies, Budgets, Forecasts
from cost_pipelines.providers import PROVIDERS

router = APIRouter(prefix="/api/v2/costs/{customer_id}", tags=["analytics"], responses=COST_READS)


async def analytics_reader(request: Request, warehouse: WarehouseDep) -> AnalyticsReader:
    reject_unknown_query(request)
    return AnalyticsReader(warehouse)


ReaderDep = Annotated[AnalyticsReader, Depends(analytics_reader)]
ProviderPath = Annotated[
    ProviderChoice, Path(description=f"{', '.join(PROVIDERS)}, or all of them")
]


@router.get(
    "/{provider}/anomalies",
    summary="Days whose cost per service left its recent weekday-adjusted band",
)
def get_anomalies(
    customer_id: CustomerIdDep, provider: ProviderPath, period: PeriodDep, reader: ReaderDep
) -> Anomalies:
    return reader.anomalies(customer_id, provider, period)


@router.get("/{provider}/forecast", summary="Month-end cost per provider and currency")
def get_forecast(
    customer_id: CustomerIdDep, provider: ProviderPath, reader: ReaderDep
) -> Forecasts:
    return reader.forecasts(customer_id, provider)


@router.get("/budgets", summary="Monthly budgets against cost so far and forecast")
def get_budgets(customer_id: CustomerIdDep, reader: ReaderDep) -> Budgets:
    return reader.budgets(customer_id)
