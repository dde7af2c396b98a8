"""The cost REST service: reads costs from ClickHouse, controls collection through Dagster."""

from __future__ import annotations

import argparse
import gc
import logging
import os
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI

from cost_api.auth import KeyRing
from cost_api.control.check_cache import CheckCache
from cost_api.control.client import DagsterClient
from cost_api.control.customers_file import CustomersFile
from cost_api.errors import install_error_handlers
from cost_api.limits import BodyLimit, RateLimiter, RequestClock
from cost_api.routes import (
    allocation,
    analytics,
    collection,
    collectors,
    costs,
    export,
    health,
    legacy,
    metrics,
    recommendations,
    restatements,
)
from cost_api.settings import ApiSettings
from cost_api.telemetry import RequestTelemetry
from cost_api.warehouse import close_clients
from cost_pipelines.logs import configure_logging
from cost_pipelines.redaction import Redactor
from cost_pipelines.warehouse.connection import WarehouseSettings

# uvicorn's own loggers: through the API's handler (its access log is off: RequestTelemetry logs
# each request with its route template, key name and duration instead).
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error")


def freeze_startup_objects() -> None:
    """Moves what lives as long as the process (modules, classes, functions, settings, the
    clients: ~230k objects once everything is imported) to the collector's permanent generation,
    so a full collection scans only what requests allocate. Without it a full collection took
    ~175 ms and came about every ninth `latest` answer of 5k items, its p99."""
    gc.collect()
    gc.freeze()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Reads the settings once and owns every client: created here, closed here."""
    # Here, not in main(): however the app is served (cost-api, uvicorn's command), it logs in
    # LOG_FORMAT.
    configure_logging(takeover=UVICORN_LOGGERS)
    logging.getLogger("uvicorn.access").disabled = True
    settings = ApiSettings()
    customers = CustomersFile(settings.customers_file) if settings.customers_file else None
    app.state.settings = settings
    app.state.warehouse_settings = WarehouseSettings()  # its client connects on first use
    app.state.keyring = KeyRing.load(settings.api_keys_file)
    app.state.customers_file = customers
    app.state.dagster = DagsterClient(
        settings.dagster_graphql_url,
        settings.dagster_location_name,
        timeout_s=settings.dagster_timeout_s,
        redact=customers.redact if customers else Redactor.from_environment(),
    )
    app.state.check_cache = CheckCache(
        app.state.dagster,
        ttl_s=settings.cost_api_checks_ttl_s,
        timeout_s=settings.cost_api_checks_timeout_s,
    )
    app.state.trigger_locks = {}
    app.state.rate_limiter = RateLimiter(settings.rate_limit_per_minute, settings.rate_limit_burst)
    app.state.warehouse_pool = ThreadPoolExecutor(
        settings.warehouse_concurrency, thread_name_prefix="warehouse"
    )
    freeze_startup_objects()
    try:
        yield
    finally:
        # Reads still hung on a frozen warehouse end at the client's socket timeout: not awaited.
        app.state.warehouse_pool.shutdown(wait=False, cancel_futures=True)
        await app.state.dagster.aclose()
        close_clients()  # clickhouse-connect: close clients when shutting down


def create_app() -> FastAPI:
    app = FastAPI(
        title="Cloud cost API",
        version="2.0.0",
        description="Costs per customer and provider from ClickHouse; collection runs in Dagster.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(BodyLimit)
    app.add_middleware(RequestClock)  # the clock starts before anything else
    app.add_middleware(RequestTelemetry)  # outermost: sees every answer, a 413 as well
    app.include_router(costs.router)
    app.include_router(analytics.router)
    app.include_router(recommendations.router)
    app.include_router(allocation.router)
    app.include_router(export.router)
    app.include_router(restatements.router)
    app.include_router(legacy.router)
    app.include_router(collection.router)
    app.include_router(collectors.router)
    app.include_router(health.router)
    app.include_router(metrics.router)
    return app


app = create_app()


def main() -> None:
    """`cost-api`: serve the API with uvicorn on API_HOST:API_PORT."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--host", default=os.environ.get("API_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("API_PORT", "8000")))
    args = parser.parse_args()
    configure_logging(takeover=UVICORN_LOGGERS)  # uvicorn's first records too
    uvicorn.run(
        "cost_api.main:app",
        host=args.host,
        port=args.port,
        log_config=None,  # ours (cost_pipelines.logs), not uvicorn's
        access_log=False,
    )
