"""A warehouse endpoint loaded with a known data set, and the API in-process in front of it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from cost_api.auth import add_key
from cost_api.main import create_app
from cost_pipelines.warehouse.connection import WarehouseSettings, create_client
from cost_pipelines.warehouse.schema import migrate
from tests.api.dataset import Dataset, build_dataset, load_dataset
from tests.support import WarehouseProcess, start_warehouse


@dataclass(frozen=True)
class Api:
    """The API under test and the keys it knows."""

    client: TestClient
    token: str  # reads every customer
    scoped_token: str  # reads only "acme"
    today: date
    keys_file: Path

    def get(self, path: str, token: str | None = None, **params: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token or self.token}"}
        return self.client.get(path, params=params, headers=headers)


def serve_api(
    monkeypatch: pytest.MonkeyPatch,
    port: int,
    keys_file: Path,
    timeout_s: int = 10,
    app: FastAPI | None = None,
) -> TestClient:
    """create_app() configured only through the environment, as in production."""
    monkeypatch.setenv("WAREHOUSE_PORT", str(port))
    monkeypatch.setenv("API_KEYS_FILE", str(keys_file))
    monkeypatch.setenv("CLICKHOUSE_QUERY_TIMEOUT_S", str(timeout_s))
    monkeypatch.delenv("CLICKHOUSE_URL", raising=False)
    return TestClient(app or create_app())


@pytest.fixture(scope="session")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WarehouseProcess]:
    process = start_warehouse(tmp_path_factory.mktemp("warehouse"))
    yield process
    process.stop()


@pytest.fixture(scope="session")
def dataset(warehouse: Any) -> Dataset:
    """The known data set, written through replace_window into the endpoint."""
    client = create_client(WarehouseSettings(warehouse_port=warehouse.port))
    try:
        migrate(client)
        data = build_dataset(datetime.now(UTC).date())
        load_dataset(client, data)
    finally:
        client.close()
    return data


@pytest.fixture(scope="session")
def lines(dataset: Dataset) -> pd.DataFrame:
    """Every current line of the data set: the expectations are computed from these."""
    return dataset.current


@pytest.fixture(scope="session")
def api(
    warehouse: Any, lines: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Api]:
    keys_file = tmp_path_factory.mktemp("keys") / "api_keys.yaml"
    token = add_key(keys_file, "finops", ["*"])
    scoped = add_key(keys_file, "acme-only", ["acme"])
    with (
        pytest.MonkeyPatch.context() as monkeypatch,
        serve_api(monkeypatch, warehouse.port, keys_file) as client,
    ):
        yield Api(client, token, scoped, datetime.now(UTC).date(), keys_file)


@pytest.fixture
def today(api: Api) -> date:
    return api.today


def days_ago(today: date, n: int) -> date:
    return today - timedelta(days=n)
