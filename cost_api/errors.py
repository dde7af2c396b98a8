"""Failures mapped once to clear answers (never a stack trace), and documented once in OpenAPI:
the exceptions, their handlers, and the error tables the routers compose."""

from __future__ import annotations

import logging
import math
import re
from typing import Any

from clickhouse_connect.driver.exceptions import ClickHouseError, OperationalError
from fastapi import FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel

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
RETRY_AFTER_S = 5  # every 503 says when to try again


class ServiceUnavailable(Exception):
    """A backing service (warehouse, Dagster) is down or too slow."""

    def __init__(
        self, service: str, reason: str, status_code: int = 503, retry_after_s: int = RETRY_AFTER_S
    ) -> None:
        super().__init__(f"{service}: {reason}")
        self.service = service
        self.reason = reason
        self.status_code = status_code
        self.retry_after_s = retry_after_s


class InvalidParameter(Exception):
    """A query parameter that passed its schema but makes no sense (422 naming the parameter)."""

    def __init__(
        self, parameter: str, message: str, value: Any = None, location: str = "query"
    ) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter
        self.message = message
        self.value = value
        self.location = location

    def detail(self) -> list[dict[str, Any]]:
        """Shaped like FastAPI's own validation errors."""
        value = self.value
        shown = value if value is None or isinstance(value, int | str) else str(value)
        loc = [self.location, self.parameter]
        return [{"loc": loc, "msg": self.message, "type": "value_error", "input": shown}]


class MetricUnavailable(InvalidParameter):
    """The chosen cost column is not supplied by a source of the requested costs: answering with
    the others' amounts only would understate the total, so the read is refused, naming them."""

    def __init__(self, metric: str, missing: list[tuple[str, str, int]]) -> None:
        sources = "; ".join(
            f"{provider} ({source}: {lines} line{'s' if lines != 1 else ''})"
            for provider, source, lines in missing
        )
        super().__init__(
            "cost_metric",
            f"cost_metric={metric} is not supplied by {sources} in this period; ask for "
            "cost_metric=billed, or for a provider whose source supplies it",
            metric,
        )
        self.missing = missing


def json_safe(value: Any) -> Any:
    """The value with non-finite floats (which strict JSON cannot hold) as strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


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
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
        # The engine's message can name tables and queries: log it, answer briefly.
        log.error("warehouse rejected the query: %s", exc)
        return JSONResponse(
            {"detail": REJECTED_DETAIL}, status_code=status.HTTP_500_INTERNAL_SERVER_ERROR
        )

    @app.exception_handler(ServiceUnavailable)
    async def service_unavailable(_: Request, exc: ServiceUnavailable) -> JSONResponse:
        log.warning("%s unavailable: %s", exc.service, exc.reason)
        headers = {"Retry-After": str(exc.retry_after_s)} if exc.status_code == 503 else None
        return JSONResponse(
            {"detail": f"{exc.service} unavailable: {exc.reason}"},
            status_code=exc.status_code,
            headers=headers,
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own answer, except that inputs JSON cannot carry (NaN, Infinity: Python's
        # JSON parser accepts them) are shown as text instead of failing the answer with a 500.
        return JSONResponse(
            {"detail": json_safe(jsonable_encoder(exc.errors()))},
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        )

    @app.exception_handler(InvalidParameter)
    async def invalid_parameter(_: Request, exc: InvalidParameter) -> JSONResponse:
        return JSONResponse(
            {"detail": exc.detail()}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT
        )


# -- the error answers the routers document, each defined once and composed per router ---------


class ErrorMessage(BaseModel):
    """A short reason: missing key (401), forbidden customer (403), rejected query (500),
    service down (503)."""

    detail: str


Responses = dict[int | str, dict[str, Any]]

AUTH: Responses = {
    401: {"model": ErrorMessage, "description": "No or unknown API key"},
    403: {"model": ErrorMessage, "description": "The key may not use this customer"},
}
WAREHOUSE: Responses = {
    500: {"model": ErrorMessage, "description": "The warehouse rejected the query (logged)"},
    503: {"model": ErrorMessage, "description": "The warehouse is down, too slow or too busy"},
}
DAGSTER: Responses = {
    502: {"model": ErrorMessage, "description": "Dagster answered with an error"},
    503: {"model": ErrorMessage, "description": "Dagster is down or too slow"},
}


def compose(*tables: Responses) -> Responses:
    """One router's responses: the tables merged, later ones winning on a shared status."""
    merged: Responses = {}
    for table in tables:
        merged.update(table)
    return merged


COST_READS = compose(AUTH, WAREHOUSE)
COLLECTION = compose(AUTH, DAGSTER)
