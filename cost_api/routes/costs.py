"""The V2 cost read endpoints: /api/v2/costs/{customer_id}/{provider}/..."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, Protocol, TypeVar

from fastapi import APIRouter, Depends, Query, Response
from starlette.concurrency import run_in_threadpool

from cost_api.control.check_cache import CheckCache
from cost_api.dependencies import CheckCacheDep, SettingsDep, WarehouseDep
from cost_api.errors import COST_READS
from cost_api.params import AsOfDep, CostQueryDep, Limit, PeriodAsOfDep, provider_members
from cost_api.readers.completeness import attach_checks
from cost_api.readers.conversion import ConversionRequest
from cost_api.readers.cost_reader import CostReader
from cost_api.readers.cursor import decode_cursor
from cost_api.readers.trends import Grain
from cost_api.schemas.costs import (
    CostLinesPage,
    CostTrends,
    LatestCosts,
    ProviderCompleteness,
    ResourceCosts,
    TotalCost,
    TypeCosts,
)

router = APIRouter(
    prefix="/api/v2/costs/{customer_id}/{provider}", tags=["costs"], responses=COST_READS
)


CURRENCY_CODE = r"^[A-Z]{3}$"


# The dependencies of the reads are `async def` although they never wait: FastAPI runs a plain
# `def` dependency on its thread pool, a hop to another thread and back on every request.
async def conversion_request(
    settings: SettingsDep,
    currency: Annotated[
        str | None,
        Query(
            pattern=CURRENCY_CODE,
            description="ISO 4217 code (e.g. EUR): every amount converted into it at read time "
            "with the reference rates of exchange_rates (see `conversion` in the answer; the "
            "rate basis is the deployment's COST_API_RATE_BASIS). A charge day without a usable "
            "rate is a 422 naming the currency and day. Without it, amounts stay per billing "
            "currency and are never added across currencies.",
        ),
    ] = None,
) -> ConversionRequest | None:
    if currency is None:
        return None
    return ConversionRequest(
        currency,
        basis=settings.cost_api_rate_basis,
        base=settings.cost_api_rate_base,
        max_age_days=settings.cost_api_rate_max_age_days,
    )


async def cost_reader(
    query: CostQueryDep,
    warehouse: WarehouseDep,
    convert: Annotated[ConversionRequest | None, Depends(conversion_request)],
    as_of: AsOfDep,
) -> CostReader:
    return CostReader(warehouse, query, convert, as_of=as_of)


ReaderDep = Annotated[CostReader, Depends(cost_reader)]


class Answer(Protocol):
    completeness: list[ProviderCompleteness]


AnswerT = TypeVar("AnswerT", bound=Answer)


async def with_checks(
    read: Callable[[], AnswerT], reader: CostReader, cache: CheckCache
) -> AnswerT:
    """Run the read (in the thread pool) while the providers' check results are looked up (a
    short wait at most, cached); the answer carries them, or null when Dagster did not tell.
    A point-in-time read has none: Dagster's results now say nothing about that instant."""
    if reader.as_of is not None:
        return await run_in_threadpool(read)
    providers = provider_members(reader.query.provider)
    answer, checks = await asyncio.gather(
        run_in_threadpool(read), cache.checks(reader.query.customer_id, providers)
    )
    attach_checks(answer.completeness, checks)
    return answer


@router.get("/metrics", summary="Stored cost lines, newest first, one page at a time")
def get_cost_metrics(
    query: CostQueryDep,
    warehouse: WarehouseDep,
    period: PeriodAsOfDep,
    settings: SettingsDep,
    as_of: AsOfDep,
    limit: Limit = 100,
    cursor: Annotated[
        str | None,
        Query(
            # It carries a whole line (resource ids run to hundreds of characters).
            max_length=8192,
            description="`next_cursor` of the previous page: it names the line the next page "
            "starts after and carries the first page's period; valid only for the same "
            "customer, provider and cost_metric",
        ),
    ] = None,
) -> CostLinesPage:
    reader = CostReader(warehouse, query, as_of=as_of)
    after = None
    if cursor is not None:
        period, after = decode_cursor(cursor, reader.query, settings.max_period_days)
    return reader.get_cost_metrics(period, limit=limit, after=after)


@router.get(
    "/latest",
    response_model=LatestCosts,
    summary="Per provider, its newest complete day by service and resource, and when it was "
    "collected",
)
async def get_latest_costs(reader: ReaderDep, cache: CheckCacheDep) -> Response:
    # Serialised here rather than by FastAPI's response handling (a check of the returned model,
    # then its own serialiser): on a day of 5,300 items that measured ~4 ms more. The declared
    # response_model still documents the answer.
    answer = await with_checks(reader.get_latest_costs, reader, cache)
    return Response(answer.__pydantic_serializer__.to_json(answer), media_type="application/json")


@router.get(
    "/trends",
    summary="Cost per day, week or month with the change between buckets (daily averages "
    "when a bucket is partial)",
)
async def get_cost_trends(
    reader: ReaderDep,
    period: PeriodAsOfDep,
    cache: CheckCacheDep,
    group_by: Annotated[
        Grain, Query(description="Bucket size: day, ISO week or month")
    ] = Grain.day,
) -> CostTrends:
    return await with_checks(lambda: reader.get_cost_trends(period, group_by), reader, cache)


@router.get(
    "/by-resource",
    summary="The most expensive resources with their share of the gross cost",
)
async def get_cost_by_resource(
    reader: ReaderDep, period: PeriodAsOfDep, cache: CheckCacheDep, limit: Limit = 10
) -> ResourceCosts:
    return await with_checks(
        lambda: reader.get_cost_by_resource(period, limit=limit), reader, cache
    )


@router.get("/by-type", summary="Cost by FOCUS service category, with its services")
async def get_cost_by_type(
    reader: ReaderDep, period: PeriodAsOfDep, cache: CheckCacheDep
) -> TypeCosts:
    return await with_checks(lambda: reader.get_cost_by_type(period), reader, cache)


@router.get("/total", summary="The period's total per currency and its number of lines")
async def get_total_cost(
    reader: ReaderDep, period: PeriodAsOfDep, cache: CheckCacheDep
) -> TotalCost:
    return await with_checks(lambda: reader.get_total_cost(period), reader, cache)
