"""A database on the shared warehouse loaded with a known data set, and the API in-process in front
of it. One per test module: rows a module's tests add are seen by no other module, and the
environment `api` sets (WAREHOUSE_PORT, CLICKHOUSE_DATABASE, ...) lasts only while that module runs,
so a test's own WarehouseSettings() reaches the same database the API reads."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime

import pandas as pd
import pytest

from cost_api.auth import add_key
from cost_pipelines.warehouse.connection import WarehouseSettings, create_client
from cost_pipelines.warehouse.schema import migrate
from tests.api.dataset import Dataset, build_dataset, load_dataset
from tests.support.api import Api, serve_api
from tests.support.ports import PortPicker
from tests.support.processes import WarehouseProcess, own_database


@pytest.fixture(scope="module")
def api_database(warehouse: WarehouseProcess) -> Iterator[str]:
    with own_database(warehouse, "api") as name:
        yield name


@pytest.fixture(scope="module")
def dataset(warehouse: WarehouseProcess, api_database: str) -> Dataset:
    """The known data set, written through replace_window into the module's database."""
    client = create_client(
        WarehouseSettings(warehouse_port=warehouse.port, clickhouse_database=api_database)
    )
    try:
        migrate(client)
        data = build_dataset(datetime.now(UTC).date())
        load_dataset(client, data)
    finally:
        client.close()
    return data


@pytest.fixture(scope="module")
def lines(dataset: Dataset) -> pd.DataFrame:
    """Every current line of the data set: the expectations are computed from these."""
    return dataset.current


@pytest.fixture(scope="module")
def api(
    warehouse: WarehouseProcess,
    api_database: str,
    lines: pd.DataFrame,
    tmp_path_factory: pytest.TempPathFactory,
    free_port: PortPicker,
) -> Iterator[Api]:
    keys_file = tmp_path_factory.mktemp("keys") / "api_keys.yaml"
    token = add_key(keys_file, "finops", ["*"])
    scoped = add_key(keys_file, "acme-only", ["acme"])
    with pytest.MonkeyPatch.context() as monkeypatch:
        # No Dagster here: a port nobody listens on, so the reads' checks are unknown (null).
        monkeypatch.setenv("DAGSTER_GRAPHQL_URL", f"http://127.0.0.1:{free_port()}/graphql")
        with serve_api(monkeypatch, warehouse.port, keys_file, database=api_database) as client:
            yield Api(client, token, scoped, datetime.now(UTC).date(), keys_file, api_database)


@pytest.fixture
def today(api: Api) -> date:
    return api.today
