"""The seed's V1 routes (/api/v1/{aws,gcp,azure}/costs), kept as deprecated aliases that now
answer from ClickHouse like /api/v2/costs/{customer_id}/{provider}/by-type."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from cost_api.dependencies import CurrentKeyDep, WarehouseDep, check_customer_access
from cost_api.errors import COST_READS
from cost_api.params import CostMetric, CostQuery, PeriodDep, reject_unknown_query
from cost_api.readers.cost_reader import CostReader
from cost_api.schemas.costs import TypeCosts
from cost_pipelines.customers import CUSTOMER_ID_MAX_LENGTH, CUSTOMER_ID_PATTERN
from cost_pipelines.providers import ProviderKey

DEPRECATED_SINCE = datetime(2026, 11, 1, tzinfo=UTC)
SUNSET = datetime(2027, 6, 1, tzinfo=UTC)
LEGACY_PROVIDERS: tuple[ProviderKey, ...] = ("aws", "gcp", "azure")

router = APIRouter(prefix="/api/v1", tags=["legacy"], deprecated=True, responses=COST_READS)


def deprecation_headers(response: Response, successor: str) -> None:
    """RFC 9745 Deprecation, RFC 8594 Sunset, and a link to the V2 route that replaces it."""
    response.headers["Deprecation"] = f"@{int(DEPRECATED_SINCE.timestamp())}"
    response.headers["Sunset"] = format_datetime(SUNSET, usegmt=True)
    response.headers["Link"] = f'<{successor}>; rel="successor-version"'


def legacy_route(provider: ProviderKey) -> Callable[..., TypeCosts]:
    def read_costs(
        request: Request,
        response: Response,
        key: CurrentKeyDep,
        warehouse: WarehouseDep,
        customer_id: Annotated[
            str,
            Query(
                max_length=CUSTOMER_ID_MAX_LENGTH,
                pattern=CUSTOMER_ID_PATTERN,
                description="Customer id (V2 has it in the path)",
            ),
        ],
        period: PeriodDep,
        cost_metric: Annotated[CostMetric, Query(description="FOCUS cost column")] = (
            CostMetric.billed
        ),
    ) -> TypeCosts:
        check_customer_access(customer_id, key)
        reject_unknown_query(request)
        deprecation_headers(response, f"/api/v2/costs/{customer_id}/{provider}/by-type")
        reader = CostReader(warehouse, CostQuery(customer_id, provider, cost_metric))
        return reader.get_cost_by_type(period)

    read_costs.__name__ = f"legacy_{provider}_costs"
    read_costs.__doc__ = (
        f"Deprecated: use /api/v2/costs/{{customer_id}}/{provider}/by-type. "
        f"{provider.upper()} costs by service category; removed after {SUNSET:%Y-%m-%d}."
    )
    return read_costs


for _provider in LEGACY_PROVIDERS:
    router.add_api_route(
        f"/{_provider}/costs",
        legacy_route(_provider),
        methods=["GET"],
        response_model=TypeCosts,
        summary=f"{_provider.upper()} costs (deprecated alias)",
    )
