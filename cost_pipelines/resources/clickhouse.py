"""ClickHouse as a Dagster resource: the warehouse the cost assets write to."""

from __future__ import annotations

import threading

from clickhouse_connect.driver.client import Client
from dagster import ConfigurableResource

from cost_pipelines.warehouse.connection import WarehouseSettings, create_client
from cost_pipelines.warehouse.schema import migrate

_clients: dict[tuple[object, ...], Client] = {}
_lock = threading.Lock()


def shared_client(settings: WarehouseSettings) -> Client:
    """One client per process and target, schema migrated on first use: clickhouse-connect
    clients are meant to be created once and reused."""
    key = (
        settings.endpoint,
        settings.clickhouse_user,
        settings.clickhouse_password.get_secret_value(),
        settings.clickhouse_database,
    )
    with _lock:
        client = _clients.get(key)
        if client is None:
            client = create_client(settings)
            migrate(client, settings.clickhouse_cluster)
            _clients[key] = client
        return client


class ClickHouseResource(ConfigurableResource):  # type: ignore[type-arg]
    """The cost warehouse. Empty fields fall back to the environment (CLICKHOUSE_URL, ...)."""

    url: str | None = None
    database: str | None = None

    def settings(self) -> WarehouseSettings:
        overrides: dict[str, str] = {}
        if self.url:
            overrides["clickhouse_url"] = self.url
        if self.database:
            overrides["clickhouse_database"] = self.database
        return WarehouseSettings(**overrides)  # type: ignore[arg-type]

    def get_client(self) -> Client:
        """The process-wide client for this warehouse, schema migrated on first use."""
        return shared_client(self.settings())
