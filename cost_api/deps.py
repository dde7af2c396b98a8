"""Dependencies shared by the routes: the warehouse client, the caller's key, customer access."""

from __future__ import annotations

from typing import Annotated

from clickhouse_connect.driver.client import Client
from fastapi import Depends, HTTPException, Path, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from cost_api.auth import ApiKey, KeyRing
from cost_api.settings import ApiSettings, get_settings
from cost_api.warehouse import api_client
from cost_pipelines.customers import (
    CUSTOMER_ID,
    CUSTOMER_ID_MAX_LENGTH,
    CUSTOMER_ID_PATTERN,
    CUSTOMER_ID_RULE,
)
from cost_pipelines.warehouse.connection import WarehouseSettings

FORBIDDEN_DETAIL = "this API key may not read that customer"

_bearer = HTTPBearer(auto_error=False, description="API key: `Authorization: Bearer <key>`")


def get_warehouse(request: Request) -> Client:
    """The process-wide ClickHouse client (created on first use, so the API starts even when the
    warehouse is down; the 503 handler answers for it then). It never migrates the schema."""
    settings: WarehouseSettings = request.app.state.warehouse_settings
    return api_client(settings)


def get_keyring(request: Request) -> KeyRing:
    ring: KeyRing = request.app.state.keyring
    return ring


def current_key(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    keyring: Annotated[KeyRing, Depends(get_keyring)],
) -> ApiKey:
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
    return key


def readable_customer(
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
            status.HTTP_422_UNPROCESSABLE_ENTITY, f"customer_id: {CUSTOMER_ID_RULE}"
        )
    if not key.may_read(customer_id):
        raise HTTPException(status.HTTP_403_FORBIDDEN, FORBIDDEN_DETAIL)
    return customer_id


Warehouse = Annotated[Client, Depends(get_warehouse)]
CurrentKey = Annotated[ApiKey, Depends(current_key)]
CustomerId = Annotated[str, Depends(readable_customer)]
Settings = Annotated[ApiSettings, Depends(get_settings)]
