"""What the routes depend on, each taken from what the lifespan built: the settings, the warehouse
client, the caller's key and the customers it may read, the Dagster client, the customers file."""

from __future__ import annotations

import asyncio
from typing import Annotated

from clickhouse_connect.driver.client import Client
from fastapi import Depends, HTTPException, Path, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from cost_api.auth import ApiKey, KeyRing
from cost_api.control.check_cache import CheckCache
from cost_api.control.client import DagsterClient
from cost_api.control.customers_file import CustomersFile
from cost_api.errors import ServiceUnavailable
from cost_api.limits import RateLimiter
from cost_api.readers.clickhouse_reader import begin_reads
from cost_api.settings import ApiSettings
from cost_api.warehouse import api_client, cached_client
from cost_pipelines.customers import (
    CUSTOMER_ID,
    CUSTOMER_ID_MAX_LENGTH,
    CUSTOMER_ID_PATTERN,
    CUSTOMER_ID_RULE,
    CustomerBook,
)
from cost_pipelines.logs import bind_log_context
from cost_pipelines.warehouse.connection import WarehouseSettings

FORBIDDEN_DETAIL = "this API key may not read that customer"

_bearer = HTTPBearer(auto_error=False, description="API key: `Authorization: Bearer <key>`")


# Every dependency here is `async def` and does no blocking I/O: FastAPI runs sync dependencies on
# the thread pool, which hung warehouse reads could hold, and routes that never touch the
# warehouse (collection control, history, health) must not wait for it.


async def get_settings(request: Request) -> ApiSettings:
    """The settings the lifespan read from the environment when the app started."""
    settings: ApiSettings = request.app.state.settings
    return settings


async def get_warehouse(request: Request) -> Client:
    """The warehouse client (created on first use, so the API starts even when the warehouse is
    down; the 503 handler answers for it then), and this request's read deadline: the route's
    reads run on the warehouse pool and give up at READ_DEADLINE_S. It never migrates the schema."""
    settings: WarehouseSettings = request.app.state.warehouse_settings
    api: ApiSettings = request.app.state.settings
    arrived = getattr(request.state, "arrived", None)  # set by the RequestClock middleware
    budget = begin_reads(request.app.state.warehouse_pool, api.read_deadline_s, arrived)
    client = cached_client(settings)
    if client is None:  # connecting asks the server its version: on the pool, not the loop
        client = await budget.run(lambda: api_client(settings))
    return client


async def get_keyring(request: Request) -> KeyRing:
    ring: KeyRing = request.app.state.keyring
    return ring


async def get_dagster(request: Request) -> DagsterClient:
    dagster: DagsterClient = request.app.state.dagster
    return dagster


async def get_check_cache(request: Request) -> CheckCache:
    cache: CheckCache = request.app.state.check_cache
    return cache


async def get_customer_book(request: Request) -> CustomerBook:
    """The customers file as the collectors see it (CUSTOMERS_FILE)."""
    customers: CustomersFile | None = request.app.state.customers_file
    if customers is None:
        raise ServiceUnavailable("collection", "CUSTOMERS_FILE is not configured for the API", 503)
    return customers.book()


def trigger_lock(request: Request, customer_id: str, provider: str) -> asyncio.Lock:
    """One lock per customer/provider pair in this process: triggers of a pair run one at a time."""
    locks: dict[tuple[str, str], asyncio.Lock] = request.app.state.trigger_locks
    return locks.setdefault((customer_id, provider), asyncio.Lock())


def authenticate(credentials: HTTPAuthorizationCredentials | None, keyring: KeyRing) -> ApiKey:
    """The configured key the request carries, else 401. The key's name (never the key) goes
    into this request's log records."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing API key: send Authorization: Bearer <key>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    key = keyring.authenticate(credentials.credentials)
    if key is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "unknown API key", headers={"WWW-Authenticate": "Bearer"}
        )
    bind_log_context(key=key.name)
    return key


async def current_key(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    keyring: Annotated[KeyRing, Depends(get_keyring)],
) -> ApiKey:
    """The request's key, within its rate limit (429 beyond it)."""
    key = authenticate(credentials, keyring)
    limiter: RateLimiter = request.app.state.rate_limiter
    wait_s = limiter.take(key.sha256)
    if wait_s:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"too many requests for this API key: try again in {wait_s} s",
            headers={"Retry-After": str(wait_s)},
        )
    return key


async def readable_customer(
    customer_id: Annotated[
        str,
        Path(
            description="Customer id as configured in the customers file",
            max_length=CUSTOMER_ID_MAX_LENGTH,
            pattern=CUSTOMER_ID_PATTERN,
        ),
    ],
    key: Annotated[ApiKey, Depends(current_key)],
) -> str:
    """The path's customer, if this key may read it. Unknown and forbidden customers get the same
    403: the decision uses only the key's scope, never a warehouse lookup."""
    if not key.may_read(customer_id):
        raise HTTPException(status.HTTP_403_FORBIDDEN, FORBIDDEN_DETAIL)
    return customer_id


def check_customer_access(customer_id: str, key: ApiKey) -> str:
    """Same rule for customer ids that arrive in a body or query rather than the path."""
    if not CUSTOMER_ID.match(customer_id):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"customer_id: {CUSTOMER_ID_RULE}"
        )
    if not key.may_read(customer_id):
        raise HTTPException(status.HTTP_403_FORBIDDEN, FORBIDDEN_DETAIL)
    bind_log_context(customer_id=customer_id)
    return customer_id


async def metrics_access(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    keyring: Annotated[KeyRing, Depends(get_keyring)],
) -> None:
    """/metrics: open unless METRICS_REQUIRE_KEY, then any valid key (whatever its customers);
    never rate limited, so a scraper cannot use up a key's requests nor be refused by them."""
    settings: ApiSettings = request.app.state.settings
    if settings.metrics_require_key:
        authenticate(credentials, keyring)


SettingsDep = Annotated[ApiSettings, Depends(get_settings)]
WarehouseDep = Annotated[Client, Depends(get_warehouse)]
CurrentKeyDep = Annotated[ApiKey, Depends(current_key)]
CustomerIdDep = Annotated[str, Depends(readable_customer)]
DagsterDep = Annotated[DagsterClient, Depends(get_dagster)]
CheckCacheDep = Annotated[CheckCache, Depends(get_check_cache)]
CustomersDep = Annotated[CustomerBook, Depends(get_customer_book)]
