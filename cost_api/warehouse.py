"""The API's own warehouse client: one per process, read-only use, never migrates the schema;
the lifespan closes it at shutdown."""

from __future__ import annotations

import hashlib
import threading

from clickhouse_connect.driver.client import Client

from cost_pipelines.warehouse.connection import WarehouseSettings, create_client

_clients: dict[tuple[object, ...], Client] = {}
# Guards only the cache assignment: a slow or hanging connect never makes other requests queue.
_assign = threading.Lock()


def _key(settings: WarehouseSettings) -> tuple[object, ...]:
    secret = settings.clickhouse_password.get_secret_value().encode()
    return (
        settings.endpoint,
        settings.clickhouse_user,
        hashlib.sha256(secret).hexdigest(),
        settings.clickhouse_database,
    )


def cached_client(settings: WarehouseSettings) -> Client | None:
    """The client already connected for this warehouse, if any (no I/O)."""
    return _clients.get(_key(settings))


def api_client(settings: WarehouseSettings) -> Client:
    """The process-wide client for this warehouse, created on first use. It runs no DDL: the
    schema belongs to `cost-migrate` and the collectors, so a read-only user is enough."""
    key = _key(settings)
    client = _clients.get(key)
    if client is not None:
        return client
    # Connect outside the lock: concurrent first requests may each connect, one client is kept.
    created = create_client(settings)
    with _assign:
        kept = _clients.setdefault(key, created)
    if kept is not created:
        created.close()
    return kept


def close_clients() -> None:
    """Close every cached client (at shutdown). A later `api_client` call connects afresh."""
    with _assign:
        clients = list(_clients.values())
        _clients.clear()
    for client in clients:
        client.close()
