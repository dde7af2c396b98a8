"""Liveness of the API and what it depends on: the warehouse and Dagster."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from cost_api.control.client import DagsterClient
from cost_api.dependencies import DagsterDep, SettingsDep
from cost_api.errors import RETRY_AFTER_S, ServiceUnavailable
from cost_api.schemas.health import ComponentHealth, Health, SupervisedProcess
from cost_api.telemetry import timed_query
from cost_api.warehouse import api_client
from cost_pipelines.warehouse.connection import WarehouseSettings

# A health check must answer even when a dependency hangs.
CHECK_TIMEOUT_S = 5.0
log = logging.getLogger(__name__)

router = APIRouter(tags=["health"])


def _warehouse_version(settings: WarehouseSettings) -> str:
    client = api_client(settings)
    with timed_query("health"):
        return str(client.command("SELECT version()"))


async def _check_warehouse(request: Request) -> ComponentHealth:
    started = time.perf_counter()
    settings: WarehouseSettings = request.app.state.warehouse_settings
    # On the warehouse pool and abandoned after the timeout: a frozen warehouse answers "down"
    # in CHECK_TIMEOUT_S instead of holding the check (and a thread of the shared pool).
    work = asyncio.get_running_loop().run_in_executor(
        request.app.state.warehouse_pool, _warehouse_version, settings
    )
    try:
        version = await asyncio.wait_for(work, CHECK_TIMEOUT_S)
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
async def health(request: Request, client: DagsterDep, settings: SettingsDep) -> JSONResponse:
    started = time.perf_counter()
    warehouse, dagster = await asyncio.gather(_check_warehouse(request), _check_dagster(client))
    api = ComponentHealth(status="up", latency_ms=round((time.perf_counter() - started) * 1000, 1))
    all_up = warehouse.status == dagster.status == "up"
    body = Health(
        status="up" if all_up else "down",
        api=api,
        warehouse=warehouse,
        dagster=dagster,
        processes=_supervised(settings.stack_status_file),
    )
    headers = None if all_up else {"Retry-After": str(RETRY_AFTER_S)}
    return JSONResponse(
        body.model_dump(mode="json"), status_code=200 if all_up else 503, headers=headers
    )


def _supervised(path: Path | None) -> dict[str, SupervisedProcess] | None:
    """What `make run`'s supervisor last wrote: each process's state and restarts."""
    if path is None:
        return None
    try:
        document = json.loads(path.read_text())
        return {name: SupervisedProcess.model_validate(entry) for name, entry in document.items()}
    except (OSError, ValueError) as exc:
        log.warning("health: cannot read %s: %s", path, type(exc).__name__)
        return None
