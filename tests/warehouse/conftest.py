"""The warehouse tests' client: on a migrated database of the test's own, so no test sees another's
windows."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from clickhouse_connect.driver.client import Client

from cost_pipelines.warehouse.connection import WarehouseSettings, create_client
from cost_pipelines.warehouse.schema import migrate
from tests.support.processes import WarehouseProcess


@pytest.fixture
def client(warehouse: WarehouseProcess, database: str) -> Iterator[Client]:
    client = create_client(
        WarehouseSettings(warehouse_port=warehouse.port, clickhouse_database=database)
    )
    migrate(client)
    yield client
    client.close()
