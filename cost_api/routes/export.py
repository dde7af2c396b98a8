"""GET /api/v2/costs/{customer_id}/{provider}/export: the period's current line items as a FOCUS
1.2 file (CSV or Parquet), streamed."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import StreamingResponse

from cost_api.dependencies import CustomerIdDep, WarehouseDep
from cost_api.errors import COST_READS
from cost_api.params import AsOfDep, PeriodAsOfDep, ProviderChoice, reject_unknown_query
from cost_api.readers.export import MEDIA_TYPES, Export, ExportFormat, ExportStream
from cost_pipelines.providers import PROVIDERS

router = APIRouter(
    prefix="/api/v2/costs/{customer_id}/{provider}",
    tags=["costs"],
    responses=COST_READS,
    dependencies=[Depends(reject_unknown_query)],
)

_FILE = {
    200: {
        "description": "The FOCUS 1.2 file, sent as an attachment while it is read",
        "content": {media_type: {} for media_type in MEDIA_TYPES.values()},
    }
}


@router.get(
    "/export",
    summary="The period's line items as a FOCUS 1.2 file (CSV or Parquet)",
    response_class=StreamingResponse,
    responses=_FILE,  # type: ignore[arg-type]
)
def export_costs(
    customer_id: CustomerIdDep,
    provider: Annotated[
        ProviderChoice, Path(description=f"{', '.join(PROVIDERS)}, or all of them")
    ],
    period: PeriodAsOfDep,
    warehouse: WarehouseDep,
    as_of: AsOfDep,
    fmt: Annotated[
        ExportFormat,
        Query(
            alias="format",
            description="csv (FOCUS columns, Tags as a JSON object, UTC ISO 8601 date/times) "
            "or parquet (decimal128(38, 12), UTC timestamps, Tags as a map)",
        ),
    ] = ExportFormat.csv,
) -> StreamingResponse:
    """Every current line of the period with FOCUS 1.2 column names, then the `x_` columns,
    in bounded memory whatever the size; the file name says customer, provider and period."""
    export = Export(customer_id, provider, period, fmt, as_of)
    stream = ExportStream(warehouse, export)  # a failing query is a 5xx before any byte
    return StreamingResponse(
        stream.chunks(),
        media_type=export.media_type,
        headers={"Content-Disposition": f'attachment; filename="{export.filename}"'},
    )
