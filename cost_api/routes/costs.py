"""The V2 cost read endpoints: /api/v2/costs/{customer_id}/{provider}/..."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from cost_api.dependencies import SettingsDep, WarehouseDep
from cost_api.errors import COST_READS
from cost_api.params import CostQueryDep, Limit, PeriodDep
from cost_api.readers.cost_reader import CostReader
from cost_api.readers.cursor import decode_cursor
from cost_api.readers.shaping import Grain
from cost_api.schemas.costs import (
    CostLinesPage,
    CostTrends,
    LatestCosts,
    ResourceCosts,
    TotalCost,
    TypeCosts,
)

router = APIRouter(
    prefix="/api/v2/costs/{customer_id}/{provider}", tags=["costs"], responses=COST_READS
)


def cost_reader(query: CostQueryDep, warehouse: WarehouseDep) -> CostReader:
    return CostReader(warehouse, query)


ReaderDep = Annotated[CostReader, Depends(cost_reader)]


@router.get("/metrics", summary="Stored cost lines, newest first, one page at a time")
def get_cost_metrics(
    reader: ReaderDep,
    period: PeriodDep,
    settings: SettingsDep,
    limit: Limit = 100,
    cursor: Annotated[
        str | None,
        Query(
            max_length=512,
            description="`next_cursor` of the previous page; it carries the first page's period "
            "and is valid only for the same customer, provider and cost_metric",
        ),
    ] = None,
) -> CostLinesPage:
    offset = 0
    if cursor is not None:
        period, offset = decode_cursor(cursor, reader.query, settings.max_period_days)
    return reader.get_cost_metrics(period, limit=limit, offset=offset)


@router.get("/latest", summary="The most recent day with data, by service and resource")
def get_latest_costs(reader: ReaderDep) -> LatestCosts:
    return reader.get_latest_costs()


@router.get("/trends", summary="Cost per day, week or month with the change between buckets")
def get_cost_trends(
    reader: ReaderDep,
    period: PeriodDep,
    group_by: Annotated[
        Grain, Query(description="Bucket size: day, ISO week or month")
    ] = Grain.day,
) -> CostTrends:
    return reader.get_cost_trends(period, group_by)


@router.get("/by-resource", summary="The most expensive resources with their share of the total")
def get_cost_by_resource(reader: ReaderDep, period: PeriodDep, limit: Limit = 10) -> ResourceCosts:
    return reader.get_cost_by_resource(period, limit=limit)


@router.get("/by-type", summary="Cost by FOCUS service category, with its services")
def get_cost_by_type(reader: ReaderDep, period: PeriodDep) -> TypeCosts:
    return reader.get_cost_by_type(period)


@router.get("/total", summary="The period's total per currency and its number of lines")
def get_total_cost(reader: ReaderDep, period: PeriodDep) -> TotalCost:
    return reader.get_total_cost(period)
