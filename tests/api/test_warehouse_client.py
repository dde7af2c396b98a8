"""The API's warehouse client: it never changes the schema, and a warehouse that hangs while the
client connects holds up only the requests that need that warehouse."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError
from fastapi.testclient import TestClient

from cost_api.auth import add_key
from cost_api.errors import engine_code, warehouse_unavailable
from cost_api.warehouse import api_client
from cost_pipelines.warehouse.connection import WarehouseSettings, create_client
from tests.support.api import serve_api
from tests.support.processes import WarehouseProcess, own_database

pytestmark = pytest.mark.slow


@pytest.fixture
def unmigrated_database(warehouse: WarehouseProcess) -> Iterator[str]:
    """A database on the test warehouse that `cost-migrate` never ran on."""
    with own_database(warehouse, "unmigrated") as name:
        yield name


@pytest.fixture
def api_on_unmigrated(
    warehouse: WarehouseProcess, unmigrated_database: str, tmp_path: Path
) -> Iterator[tuple[TestClient, str]]:
    keys = tmp_path / "keys.yaml"
    token = add_key(keys, "finops", ["*"])
    with (
        pytest.MonkeyPatch.context() as monkeypatch,
        serve_api(monkeypatch, warehouse.port, keys, database=unmigrated_database) as client,
    ):
        yield client, token


def test_reading_never_creates_or_migrates_a_table(
    warehouse: WarehouseProcess, unmigrated_database: str, api_on_unmigrated: Any
) -> None:
    client, token = api_on_unmigrated

    answer = client.get(
        "/api/v2/costs/acme/all/total", headers={"Authorization": f"Bearer {token}"}
    )

    assert answer.status_code != 200
    tables = warehouse.client().query(
        "SELECT name FROM system.tables WHERE database = {db:String}",
        parameters={"db": unmigrated_database},
    )
    assert tables.result_rows == []


def _silent_peer() -> tuple[socket.socket, threading.Event, list[socket.socket]]:
    """A TCP peer that accepts connections and never answers: a warehouse hung mid-connect."""
    listener = socket.create_server(("127.0.0.1", 0))
    connected = threading.Event()
    held: list[socket.socket] = []

    def accept() -> None:
        try:
            while True:
                conn, _ = listener.accept()
                held.append(conn)
                connected.set()
        except OSError:
            return  # the listener was closed

    threading.Thread(target=accept, daemon=True).start()
    return listener, connected, held


def test_a_hanging_warehouse_does_not_hold_up_clients_of_another(
    warehouse: WarehouseProcess,
) -> None:
    listener, connected, held = _silent_peer()
    hung = WarehouseSettings(warehouse_port=listener.getsockname()[1], clickhouse_query_timeout_s=5)
    failures: list[BaseException] = []

    def connect_to_hung() -> None:
        try:
            api_client(hung)
        except OperationalError as exc:
            failures.append(exc)

    stuck = threading.Thread(target=connect_to_hung)
    stuck.start()
    try:
        assert connected.wait(10), "the client never reached the hung warehouse"
        live = api_client(
            WarehouseSettings(warehouse_port=warehouse.port, clickhouse_database="system")
        )
        assert live.command("SELECT 1") == 1
        assert stuck.is_alive(), "the live warehouse's client waited for the hung connect"
    finally:
        stuck.join()
        listener.close()
        for conn in held:
            conn.close()
    assert len(failures) == 1  # the hung warehouse itself still fails, as a connection error


def test_a_query_the_warehouse_rejects_is_a_short_500_logged_with_the_engine_message(
    api_on_unmigrated: Any, caplog: pytest.LogCaptureFixture
) -> None:
    client, token = api_on_unmigrated

    with caplog.at_level(logging.ERROR, logger="cost_api.errors"):
        answer = client.get(
            "/api/v2/costs/acme/all/total", headers={"Authorization": f"Bearer {token}"}
        )

    assert answer.status_code == 500
    assert answer.json() == {"detail": "internal error: the warehouse rejected the query"}
    assert "Retry-After" not in answer.headers
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "Unknown table function" in logged  # the engine's own words, kept server-side


def test_only_unreachable_slow_or_busy_warehouses_count_as_unavailable(
    warehouse: WarehouseProcess,
) -> None:
    client = warehouse.client()
    with pytest.raises(DatabaseError) as timed_out:
        client.query(
            "SELECT sleepEachRow(0.5) FROM numbers(8) SETTINGS max_block_size = 1",
            settings={"max_execution_time": 1, "timeout_overflow_mode": "throw"},
        )
    with pytest.raises(DatabaseError) as bad_query:
        client.query("SELECT no_such_column FROM system.one")
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]
    with pytest.raises(OperationalError) as unreachable:
        create_client(WarehouseSettings(warehouse_port=port))

    assert engine_code(timed_out.value) == 159 and warehouse_unavailable(timed_out.value)
    assert warehouse_unavailable(unreachable.value)
    assert warehouse_unavailable(DatabaseError("Code: 209. DB::NetException: Timeout", code=209))
    assert warehouse_unavailable(DatabaseError("Code: 159. Timeout exceeded: elapsed 10 s"))
    assert not warehouse_unavailable(bad_query.value)
