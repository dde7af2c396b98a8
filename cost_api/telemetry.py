"""What the API tells its operators: a log record per request and Prometheus metrics (served at
/metrics, cost_api.routes.metrics) of requests, warehouse queries and Dagster calls.

Labels are bounded by the code, never by what clients send: a request is labelled by its route
template (`/api/v2/costs/{customer_id}/{provider}/total`, never the path with a customer id in
it; `unmatched` for paths no route serves) and its status class, a warehouse query by the reader
that ran it, a Dagster call by its GraphQL operation. No key, customer or secret is ever a label.
The metrics are per API process, like the rate limit."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi.routing import iter_route_contexts
from prometheus_client import Counter, Histogram
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cost_pipelines.logs import log_context

log = logging.getLogger("cost_api.requests")

UNMATCHED = "unmatched"
# HTTP's methods; any other word a client sends is labelled `other` (labels stay bounded).
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Reads answer within READ_DEADLINE_S (10 s by default); exports stream for longer.
_REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
_BACKEND_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

REQUEST_SECONDS = Histogram(
    "cost_api_request_duration_seconds",
    "Time from a request's arrival to the end of its answer, by route template and status class",
    ["method", "route", "status_class"],
    buckets=_REQUEST_BUCKETS,
)
REQUEST_ERRORS = Counter(
    "cost_api_request_errors",
    "Answers with a 4xx or 5xx status, by route template and status class",
    ["method", "route", "status_class"],
)
WAREHOUSE_SECONDS = Histogram(
    "cost_api_warehouse_query_duration_seconds",
    "Warehouse queries the API ran, by the reader that ran them and outcome (ok or error)",
    ["query", "outcome"],
    buckets=_BACKEND_BUCKETS,
)
DAGSTER_SECONDS = Histogram(
    "cost_api_dagster_request_duration_seconds",
    "Calls to Dagster's GraphQL API, by operation and outcome (ok, error, timeout, unreachable)",
    ["operation", "outcome"],
    buckets=_BACKEND_BUCKETS,
)


@contextmanager
def timed_query(query: str) -> Iterator[None]:
    """Observe one warehouse query's latency: `ok`, or `error` when it raised."""
    started = time.perf_counter()
    outcome = "error"
    try:
        yield
        outcome = "ok"
    finally:
        WAREHOUSE_SECONDS.labels(query, outcome).observe(time.perf_counter() - started)


def observe_dagster(operation: str, outcome: str, seconds: float) -> None:
    DAGSTER_SECONDS.labels(operation, outcome).observe(seconds)


def status_class(status: int) -> str:
    return f"{status // 100}xx"


def route_of(scope: Scope) -> tuple[str, dict[str, Any]]:
    """The template of the route that serves this request and its path parameters (matched here,
    before anything answers: a body refused with 413 is labelled by its route too)."""
    partial = None
    for context in iter_route_contexts(scope["app"].routes):  # routers included, flattened
        route = context.original_route
        match, child = route.matches(scope)
        if match is Match.FULL:
            return str(context.path), dict(child.get("path_params") or {})
        if match is Match.PARTIAL and partial is None:  # the path, another method: 405
            partial = str(context.path)
    return partial or UNMATCHED, {}


class RequestTelemetry:
    """ASGI middleware, outermost: each request's route template, status and duration, as one log
    record (with the customer, provider and API key name once known, never the key) and in the
    request metrics. Records made while the request runs carry its route and customer too."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        route, params = route_of(scope)
        status = 500  # unless the app answers: an exception that escapes it is a 500
        method = scope["method"] if scope["method"] in _METHODS else "other"  # a client's word

        async def noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        context = {
            "method": method,
            "route": route,
            "customer_id": params.get("customer_id"),
            "provider": params.get("provider"),
        }
        with log_context(**context):
            try:
                await self.app(scope, receive, noting_status)
            finally:
                seconds = time.perf_counter() - started
                labels = (method, route, status_class(status))
                REQUEST_SECONDS.labels(*labels).observe(seconds)
                if status >= 400:
                    REQUEST_ERRORS.labels(*labels).inc()
                # Scrapes every few seconds would drown the other records.
                level = logging.DEBUG if route == "/metrics" else _level(status)
                log.log(
                    level,
                    "%s %s %d",
                    method,
                    route,
                    status,
                    extra={"status": status, "duration_ms": round(seconds * 1000, 1)},
                )


def _level(status: int) -> int:
    return logging.WARNING if status >= 500 else logging.INFO
