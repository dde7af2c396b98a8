"""A warehouse that hangs or is gone gets a short 503, never a stack trace or a hanging request."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cost_api.auth import add_key
from cost_api.errors import ServiceUnavailable
from cost_api.readers import clickhouse_reader
from cost_api.readers.clickhouse_reader import ClickHouseReader
from cost_pipelines.warehouse.connection import WarehouseSettings, create_client
from cost_pipelines.warehouse.schema import migrate
from tests.support.api import serve_api
from tests.support.processes import start_warehouse

pytestmark = pytest.mark.slow

ENDPOINTS = ["metrics", "latest", "trends", "by-resource", "by-type", "total"]
SOCKET_TIMEOUT_S = 2


@pytest.fixture(scope="module")
def own_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A warehouse of this module only: these tests stop it."""
    process = start_warehouse(tmp_path_factory.mktemp("doomed-warehouse"))
    client = create_client(WarehouseSettings(warehouse_port=process.port))
    migrate(client)  # as `cost-migrate` does before the API starts: the API never migrates
    client.close()
    yield process
    if _alive(process.pid):
        os.kill(process.pid, signal.SIGCONT)
    process.stop()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def client_and_token(own_warehouse: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    keys: Path = tmp_path_factory.mktemp("doomed-keys") / "keys.yaml"
    token = add_key(keys, "finops", ["*"])
    with (
        pytest.MonkeyPatch.context() as monkeypatch,
        serve_api(monkeypatch, own_warehouse.port, keys, timeout_s=SOCKET_TIMEOUT_S) as client,
    ):
        yield client, token


def test_a_read_running_past_its_time_limit_becomes_503(
    own_warehouse: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(clickhouse_reader, "READ_TIMEOUT_S", 1)
    client = create_client(WarehouseSettings(warehouse_port=own_warehouse.port))
    reader = ClickHouseReader(client)
    with pytest.raises(ServiceUnavailable) as raised:
        reader.rows(
            "SELECT sleepEachRow(0.5) FROM numbers({n:UInt32}) SETTINGS max_block_size = 1",
            {"n": 8},
        )
    assert raised.value.reason == "the query took longer than 1 s"


def _get(client: TestClient, token: str, endpoint: str) -> Any:
    return client.get(
        f"/api/v2/costs/acme/all/{endpoint}", headers={"Authorization": f"Bearer {token}"}
    )


def _assert_short_503(answer: Any) -> None:
    assert answer.status_code == 503, answer.text
    assert int(answer.headers["Retry-After"]) >= 1  # a 503 says when to try again
    detail = answer.json()["detail"]
    assert detail.startswith("warehouse") and len(detail) < 120
    assert "Traceback" not in answer.text and "127.0.0.1" not in answer.text


def test_reads_work_while_the_warehouse_is_up(client_and_token: Any) -> None:
    client, token = client_and_token
    assert _get(client, token, "total").status_code == 200


def test_a_warehouse_that_stops_answering_gets_503_within_the_timeout(
    own_warehouse: Any, client_and_token: Any
) -> None:
    client, token = client_and_token
    os.kill(own_warehouse.pid, signal.SIGSTOP)  # alive, port open, never answers
    try:
        _assert_short_503(_get(client, token, "total"))
    finally:
        os.kill(own_warehouse.pid, signal.SIGCONT)
    assert _get(client, token, "total").status_code == 200


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_every_read_answers_503_when_the_warehouse_is_stopped(
    own_warehouse: Any, client_and_token: Any, endpoint: str
) -> None:
    client, token = client_and_token
    if _alive(own_warehouse.pid):
        own_warehouse.stop()
    _assert_short_503(_get(client, token, endpoint))
