"""Dependencies of the collection-control routes: the Dagster client and the customers file."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, Request

from cost_api.dagster_client import DagsterClient
from cost_api.errors import ServiceUnavailable
from cost_api.redaction import Redactor, env_names_in_customers_file
from cost_api.settings import ApiSettings, get_settings
from cost_pipelines.customers import CustomerBook, load_customers


class _CustomersFile:
    """The customers file, re-read only when it changes on disk."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._book = CustomerBook(path)
        self._redactor = Redactor.from_environment()

    def _refresh(self) -> None:
        try:
            stat = self.path.stat()
        except OSError as exc:
            raise ServiceUnavailable(
                "customers file", f"cannot read {self.path}: {exc.strerror}", 503
            ) from exc
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            self._book = load_customers(self.path)
            self._redactor = Redactor.from_environment(env_names_in_customers_file(self.path))
            self._stamp = stamp

    def book(self) -> CustomerBook:
        self._refresh()
        return self._book

    def redact(self, text: str) -> str:
        """Scrub a text with the secrets of the customers file as it is now."""
        # Unreadable now: the last known secrets and the shape patterns still apply.
        with contextlib.suppress(ServiceUnavailable):
            self._refresh()
        return self._redactor(text)


def _customers_file(settings: ApiSettings) -> _CustomersFile | None:
    return _CustomersFile(settings.customers_file) if settings.customers_file else None


def _state(app: FastAPI) -> tuple[DagsterClient, _CustomersFile | None]:
    # Created on first use and kept on the app: one connection pool per process. No await
    # between the check and the assignment, so concurrent requests cannot create two.
    if not hasattr(app.state, "dagster"):
        settings = get_settings()
        customers = _customers_file(settings)
        app.state.customers_file = customers
        app.state.dagster = DagsterClient(
            settings.dagster_graphql_url,
            settings.dagster_location_name,
            timeout_s=settings.dagster_timeout_s,
            redact=customers.redact if customers else Redactor.from_environment(),
        )
        app.state.trigger_locks = {}
    return app.state.dagster, app.state.customers_file


@asynccontextmanager
async def close_dagster(app: FastAPI) -> AsyncIterator[None]:
    """Router lifespan: closes the Dagster client's connections when the app stops."""
    yield
    client = getattr(app.state, "dagster", None)
    if client is not None:
        del app.state.dagster
        await client.aclose()


def get_dagster(request: Request) -> DagsterClient:
    return _state(request.app)[0]


def get_customer_book(request: Request) -> CustomerBook:
    """The customers file as the collectors see it (CUSTOMERS_FILE)."""
    customers = _state(request.app)[1]
    if customers is None:
        raise ServiceUnavailable("collection", "CUSTOMERS_FILE is not configured for the API", 503)
    return customers.book()


def trigger_lock(request: Request, customer_id: str, provider: str) -> asyncio.Lock:
    """One lock per customer/provider pair in this process: triggers of a pair run one at a time."""
    _state(request.app)
    locks: dict[tuple[str, str], asyncio.Lock] = request.app.state.trigger_locks
    return locks.setdefault((customer_id, provider), asyncio.Lock())


Dagster = Annotated[DagsterClient, Depends(get_dagster)]
Customers = Annotated[CustomerBook, Depends(get_customer_book)]
