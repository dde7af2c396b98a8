"""Failures of the services behind the API, mapped once to clear answers (never a stack trace)."""

from __future__ import annotations

import logging

from clickhouse_connect.driver.exceptions import ClickHouseError, OperationalError
from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse

log = logging.getLogger(__name__)


class ServiceUnavailable(Exception):
    """A backing service (warehouse, Dagster) is down or too slow."""

    def __init__(self, service: str, reason: str, status_code: int = 503) -> None:
        super().__init__(f"{service}: {reason}")
        self.service = service
        self.reason = reason
        self.status_code = status_code


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(OperationalError)
    async def warehouse_unreachable(_: Request, exc: OperationalError) -> JSONResponse:
        log.warning("warehouse unreachable: %s", type(exc).__name__)
        return JSONResponse(
            {"detail": "warehouse unavailable: ClickHouse did not answer"},
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(ClickHouseError)
    async def warehouse_error(_: Request, exc: ClickHouseError) -> JSONResponse:
        # The engine's message can name tables and queries: log it, answer briefly.
        log.error("warehouse query failed: %s", exc)
        return JSONResponse(
            {"detail": "warehouse error: the query failed"},
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        )

    @app.exception_handler(ServiceUnavailable)
    async def service_unavailable(_: Request, exc: ServiceUnavailable) -> JSONResponse:
        log.warning("%s unavailable: %s", exc.service, exc.reason)
        return JSONResponse(
            {"detail": f"{exc.service} unavailable: {exc.reason}"}, status_code=exc.status_code
        )
