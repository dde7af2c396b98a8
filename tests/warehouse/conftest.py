"""The embedded warehouse endpoint as a real OS process, for the warehouse tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from tests.support import WarehouseProcess, start_warehouse


class WarehouseEndpoint(NamedTuple):
    """Where a running endpoint listens, what it serves and its process id."""

    host: str
    port: int
    data_dir: Path
    pid: int


@pytest.fixture(scope="module")
def warehouse_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WarehouseProcess]:
    """`cost-warehouse` on a free 127.0.0.1 port with a fresh data dir; stopped by its PID."""
    process = start_warehouse(tmp_path_factory.mktemp("warehouse") / "data")
    yield process
    process.stop()


@pytest.fixture(scope="module")
def warehouse(warehouse_process: WarehouseProcess) -> WarehouseEndpoint:
    """(host, port, data_dir, pid) of the module's endpoint."""
    return WarehouseEndpoint(
        warehouse_process.host,
        warehouse_process.port,
        warehouse_process.data_dir,
        warehouse_process.pid,
    )
