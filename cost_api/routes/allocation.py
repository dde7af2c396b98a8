"""Allocation reads: /api/v2/costs/{customer_id}/{provider}/by-tag, /tag-keys and /by-account."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from cost_api.dependencies import CheckCacheDep, WarehouseDep
from cost_api.errors import COST_READS
from cost_api.params import MAX_LIMIT, AsOfDep, CostQueryDep, PeriodAsOfDep
from cost_api.readers.allocation import AllocationReader
from cost_api.readers.conversion import ConversionRequest
from cost_api.routes.costs import conversion_request, with_checks
from cost_api.schemas.allocation import AccountCosts, TagCosts, TagKeys

router = APIRouter(
    prefix="/api/v2/costs/{customer_id}/{provider}", tags=["allocation"], responses=COST_READS
)

# Azure allows tag names of up to 512 characters, AWS 128, GCP label keys 63.
MAX_TAG_KEY = 512
TAG_SOURCES = (
    "Tags come from AWS Data Exports (FOCUS `Tags`: cost allocation tags), Azure Cost "
    "Management (the tag keys configured per customer, `providers.azure.tag_keys`) and GCP "
    "(resource labels over project labels). Vultr's billing API has no tags and Cost Explorer "
    "lines carry none: their cost is always untagged."
)
# What every allocation read adds: conversion on request and completeness, like the cost reads.
CONVERSION = (
    " With `currency=XXX` every line is converted into XXX at its charge day's reference rate "
    "(see `conversion`; a day without a usable rate is a 422 on `currency`), so the answer has "
    "one currency; without it, amounts stay per billing currency. `completeness` states, per "
    "provider, its last complete day, when it was collected, its estimated and open days of the "
    "period and whether its asset checks passed."
)


async def allocation_reader(
    query: CostQueryDep,
    warehouse: WarehouseDep,
    convert: Annotated[ConversionRequest | None, Depends(conversion_request)],
    as_of: AsOfDep,
) -> AllocationReader:
    return AllocationReader(warehouse, query, convert, as_of=as_of)


ReaderDep = Annotated[AllocationReader, Depends(allocation_reader)]
ValueLimit = Annotated[
    int,
    Query(
        ge=1,
        le=MAX_LIMIT,
        description=f"Tag values listed per currency besides the untagged bucket (1..{MAX_LIMIT});"
        " the rest are summed in `other_values`",
    ),
]
KeyLimit = Annotated[
    int, Query(ge=1, le=MAX_LIMIT, description=f"How many tag keys to list (1..{MAX_LIMIT})")
]


@router.get(
    "/by-tag",
    summary="Cost per value of one tag key, with the untagged cost as its own bucket",
    description=TAG_SOURCES
    + " Keys match exactly (AWS keys are case sensitive, GCP label keys lowercase), except on "
    "Azure lines, whose tag names are case-insensitive: they are stored lowercase and the key is "
    "lowercased to match them. Values are as the provider wrote them." + CONVERSION,
)
async def get_cost_by_tag(
    reader: ReaderDep,
    period: PeriodAsOfDep,
    cache: CheckCacheDep,
    key: Annotated[
        str,
        Query(
            min_length=1,
            max_length=MAX_TAG_KEY,
            description="The tag key (label key on GCP) to allocate by, e.g. `team`; "
            "`tag-keys` lists the keys the period's lines carry",
        ),
    ],
    limit: ValueLimit = 100,
) -> TagCosts:
    return await with_checks(
        lambda: reader.get_cost_by_tag(period, key, limit=limit), reader, cache
    )


@router.get(
    "/tag-keys",
    summary="The tag keys the period's lines carry, with their lines and cost",
    description=TAG_SOURCES + CONVERSION,
)
async def get_tag_keys(
    reader: ReaderDep, period: PeriodAsOfDep, cache: CheckCacheDep, limit: KeyLimit = 100
) -> TagKeys:
    return await with_checks(lambda: reader.get_tag_keys(period, limit=limit), reader, cache)


@router.get(
    "/by-account",
    summary="Cost per billing account and sub-account, with their names and shares",
    description="Billing accounts: AWS payer, Azure billing account, GCP billing account, Vultr "
    "account; sub-accounts: AWS linked account, Azure subscription, GCP project, Vultr account. "
    "Shares are of each currency's net total for the period (credits and refunds with their "
    "sign), so they add up to 100 per currency." + CONVERSION,
)
async def get_cost_by_account(
    reader: ReaderDep, period: PeriodAsOfDep, cache: CheckCacheDep
) -> AccountCosts:
    return await with_checks(lambda: reader.get_cost_by_account(period), reader, cache)
