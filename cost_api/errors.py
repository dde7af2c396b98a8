"""Failures of the services behind the API, mapped once to clear answers (never a stack trace)."""

from __future__ import annotations

import logging
import re

from clickhouse_connect.driver.exceptions import ClickHouseError, OperationalError
from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse

log = logging.getLogger(__name__)

# Engine codes that mean "too slow or too busy now", not "this query is wrong": worth a retry.
WAREHOUSE_BUSY_CODES = frozenset(
    {
        159,  # TIMEOUT_EXCEEDED
        202,  # TOO_MANY_SIMULTANEOUS_QUERIES
        209,  # SOCKET_TIMEOUT
    }
)
_CODE_IN_MESSAGE = re.compile(r"\bCode:\s*(\d+)")
UNAVAILABLE_DETAIL = "warehouse unavailable: ClickHouse did not answer"
REJECTED_DETAIL = "internal error: the warehouse rejected the query"


class ServiceUnavailable(Exception):
    """A backing service (warehouse, Dagster) is down or too slow."""

    def __init__(self, service: str, reason: str, status_code: int = 503) -> None:
        super().__init__(f"{service}: {reason}")
        self.service = service
        self.reason = reason
        self.status_code = status_code


def engine_code(exc: ClickHouseError) -> int | None:
    """The ClickHouse error code of a failure: the driver's header value, else the message's."""
    code = getattr(exc, "code", None)
    if isinstance(code, int):
        return code
    found = _CODE_IN_MESSAGE.search(str(exc))
    return int(found.group(1)) if found else None


def warehouse_unavailable(exc: ClickHouseError) -> bool:
    """True when the warehouse is unreachable, timed out or overloaded (503, retry later);
    False when it answered and refused the query (a defect on our side: 500)."""
    return isinstance(exc, OperationalError) or engine_code(exc) in WAREHOUSE_BUSY_CODES


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ClickHouseError)
    async def warehouse_error(_: Request, exc: ClickHouseError) -> JSONResponse:
        if warehouse_unavailable(exc):
            log.warning("warehouse unavailable: %s (code %s)", type(exc).__name__, engine_code(exc))
            return JSONResponse(
                {"detail": UNAVAILABLE_DETAIL},
                status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
                headers={"Retry-After": "5"},
            )
        # The engine's message can name tables and queries: log it, answer briefly.
        log.error("warehouse rejected the query: %s", exc)
        return JSONResponse(
            {"detail": REJECTED_DETAIL}, status_code=status.HTTP_500_INTERNAL_SERVER_ERROR
        )

    @app.exception_handler(ServiceUnavailable)
    async def service_unavailable(_: Request, exc: ServiceUnavailable) -> JSONResponse:
        log.warning("%s unavailable: %s", exc.service, exc.reason)
        return JSONResponse(
            {"detail": f"{exc.service} unavailable: {exc.reason}"}, status_code=exc.status_code
        )
