"""Liveness of the API and what it depends on: the warehouse and Dagster."""

from __future__ import annotations

import asyncio
import logging
import time

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from cost_api.control.client import DagsterClient
from cost_api.dependencies import DagsterDep, get_warehouse
from cost_api.errors import ServiceUnavailable
from cost_api.schemas.health import ComponentHealth, Health

# A health check must answer even when a dependency hangs.
CHECK_TIMEOUT_S = 5.0
log = logging.getLogger(__name__)

router = APIRouter(tags=["health"])


def _warehouse_version(request: Request) -> str:
    client = get_warehouse(request)
    return str(client.command("SELECT version()"))


async def _check_warehouse(request: Request) -> ComponentHealth:
    started = time.perf_counter()
    try:
        version = await asyncio.wait_for(
            run_in_threadpool(_warehouse_version, request), CHECK_TIMEOUT_S
        )
    except TimeoutError:
        return ComponentHealth(status="down", detail="no answer within 5 s")
    except Exception as exc:  # any failure means down; the type says enough, never the text
        log.warning("health: warehouse down: %s", exc)
        return ComponentHealth(status="down", detail=f"unreachable ({type(exc).__name__})")
    latency = (time.perf_counter() - started) * 1000
    return ComponentHealth(status="up", latency_ms=round(latency, 1), version=version)


async def _check_dagster(dagster: DagsterClient) -> ComponentHealth:
    try:
        version, latency = await asyncio.wait_for(dagster.ping(), CHECK_TIMEOUT_S)
    except TimeoutError:
        return ComponentHealth(status="down", detail="no answer within 5 s")
    except ServiceUnavailable as exc:
        return ComponentHealth(status="down", detail=exc.reason)
    return ComponentHealth(status="up", latency_ms=round(latency, 1), version=version)


@router.get(
    "/health",
    response_model=Health,
    summary="API, warehouse and Dagster: up or down, with latency",
    responses={503: {"model": Health, "description": "At least one component is down"}},
)
async def health(request: Request, client: DagsterDep) -> JSONResponse:
    started = time.perf_counter()
    warehouse, dagster = await asyncio.gather(_check_warehouse(request), _check_dagster(client))
    api = ComponentHealth(status="up", latency_ms=round((time.perf_counter() - started) * 1000, 1))
    all_up = warehouse.status == dagster.status == "up"
    body = Health(status="up" if all_up else "down", api=api, warehouse=warehouse, dagster=dagster)
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if all_up else 503)
