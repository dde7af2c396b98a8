"""The real peers every test package shares, each defined once: the embedded warehouse endpoint
(one process for the whole run), moto's AWS server and free loopback ports.

Isolation on the shared warehouse: a test that writes cost rows takes a database of its own
(`database`, `warehouse_resource`, or `own_database` in a module fixture), so tests never see each
other's rows whatever order they run in; the endpoint's own tests (tests/local/warehouse) use
uniquely named tables. Tests that stop, kill or restart a warehouse start their own (see
`tests.support.processes.start_warehouse`), never this one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from moto.server import ThreadedMotoServer

from cost_pipelines.resources.clickhouse import ClickHouseResource
from tests.support.ports import PortPicker
from tests.support.processes import WarehouseProcess, own_database, start_warehouse


@pytest.fixture(scope="session")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WarehouseProcess]:
    """`cost-warehouse` on a free 127.0.0.1 port with a fresh data dir; stopped by its PID."""
    process = start_warehouse(tmp_path_factory.mktemp("warehouse") / "data")
    yield process
    process.stop()


@pytest.fixture
def database(warehouse: WarehouseProcess) -> Iterator[str]:
    """An empty database of this test's own on the shared warehouse (not migrated)."""
    with own_database(warehouse) as name:
        yield name


@pytest.fixture
def warehouse_resource(warehouse: WarehouseProcess, database: str) -> ClickHouseResource:
    """The Dagster resource on this test's own database (migrated on first use)."""
    return ClickHouseResource(url=warehouse.url, database=database)


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """moto's server on a free 127.0.0.1 port. Shared: reset it before relying on its state."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="session")
def free_port() -> PortPicker:
    """Call it for a free 127.0.0.1 port (`.many(n)` for several); never the same one twice."""
    return PortPicker()
