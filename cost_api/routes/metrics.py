"""Prometheus metrics of this API process (cost_api.telemetry): requests by route template and
status class, warehouse queries, Dagster calls, and the client library's process metrics."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from cost_api.dependencies import metrics_access
from cost_api.errors import ErrorMessage

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    response_class=Response,
    dependencies=[Depends(metrics_access)],
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"},
        401: {"model": ErrorMessage, "description": "METRICS_REQUIRE_KEY is on and no valid key"},
    },
    summary="Prometheus metrics",
)
async def metrics() -> Response:
    """Aggregate counts and latencies only: no customer, key or amount is ever a label. Open
    unless METRICS_REQUIRE_KEY (then any valid key), and never rate limited."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
