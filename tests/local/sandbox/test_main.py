"""`cost-sandbox` as `make run` starts it: four simulators, the demo customer's files, and every
provider's collection working against them; a busy port is a clear message."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from dagster import StaticPartitionsDefinition, materialize

from cost_local.sandbox.demo import read_environment_file
from cost_local.sandbox.main import bills_until
from cost_pipelines.assets import PROVIDER_SPECS
from cost_pipelines.assets.collection import build_cost_asset
from cost_pipelines.assets.exchange_rates import exchange_rates
from cost_pipelines.customers import load_customers
from cost_pipelines.resources.aws import AwsResource
from cost_pipelines.resources.azure import AzureResource
from cost_pipelines.resources.clickhouse import ClickHouseResource
from cost_pipelines.resources.customers import CustomersResource
from cost_pipelines.resources.ecb import URL_ENV, EcbRatesResource
from cost_pipelines.resources.gcp import GcpResource
from cost_pipelines.resources.vultr import VultrResource
from tests.support.ports import PortPicker, free_ports

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


@dataclass
class RunningSandbox:
    process: subprocess.Popen[str]
    data_dir: Path
    ready_line: str


def sandbox_env(data_dir: Path, ports: list[int]) -> dict[str, str]:
    env = dict(os.environ, DATA_DIR=str(data_dir))
    for provider, port in zip(("AWS", "AZURE", "GCP", "VULTR", "ECB"), ports, strict=True):
        env[f"SANDBOX_{provider}_PORT"] = str(port)
    return env


@pytest.fixture(scope="module")
def sandbox(
    tmp_path_factory: pytest.TempPathFactory, free_port: PortPicker
) -> Iterator[RunningSandbox]:
    data_dir = tmp_path_factory.mktemp("sandbox")
    process = subprocess.Popen(
        [str(BIN / "cost-sandbox")],
        env=sandbox_env(data_dir, free_port.many(5)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    ready = ""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "ready:" not in ready:
        ready = process.stdout.readline()
        assert ready or process.poll() is None, "cost-sandbox exited while starting"
    running = RunningSandbox(process, data_dir, ready)
    yield running
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)


def test_ready_line_names_every_simulator(sandbox: RunningSandbox) -> None:
    for provider in ("aws", "azure", "gcp", "vultr", "ecb"):
        assert f"{provider} http://127.0.0.1:" in sandbox.ready_line


def test_demo_customers_file_loads_and_references_credentials_by_name(
    sandbox: RunningSandbox,
) -> None:
    book = load_customers(sandbox.data_dir / "customers.yaml")
    assert book.errors == []
    assert set(book.customers["demo"].providers) == {"aws", "azure", "gcp", "vultr"}
    text = (sandbox.data_dir / "customers.yaml").read_text()
    env = read_environment_file(sandbox.data_dir / "sandbox.env")
    assert env["SANDBOX_AZURE_CLIENT_SECRET"] not in text
    assert (sandbox.data_dir / "sandbox.env").stat().st_mode & 0o077 == 0


def test_every_provider_of_the_demo_customer_collects_from_the_sandbox(
    sandbox: RunningSandbox,
    warehouse_resource: ClickHouseResource,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in read_environment_file(sandbox.data_dir / "sandbox.env").items():
        monkeypatch.setenv(name, value)
    partitions = StaticPartitionsDefinition(["demo"])
    resources = {
        "warehouse": warehouse_resource,
        "customers": CustomersResource(path=str(sandbox.data_dir / "customers.yaml")),
        "aws": AwsResource(),
        "azure": AzureResource(),
        "gcp": GcpResource(),
        "vultr": VultrResource(),
    }
    for spec in PROVIDER_SPECS:
        result = materialize(
            [build_cost_asset(spec, partitions)],
            partition_key="demo",
            resources=resources,
            raise_on_error=False,
        )
        assert result.success, spec.provider
        [event] = result.get_asset_materialization_events()
        assert event.materialization.metadata["rows_written"].value > 0, spec.provider


def test_the_exchange_rates_asset_loads_sandbox_rates_for_every_day_of_the_demo_bills(
    sandbox: RunningSandbox,
    warehouse_resource: ClickHouseResource,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = read_environment_file(sandbox.data_dir / "sandbox.env")
    monkeypatch.setenv(URL_ENV, env[URL_ENV])
    result = materialize(
        [exchange_rates], resources={"warehouse": warehouse_resource, "ecb": EcbRatesResource()}
    )
    assert result.success
    client = warehouse_resource.get_client()
    stored = client.query(
        "SELECT DISTINCT rate_date FROM exchange_rates WHERE currency = 'USD'"
    ).result_columns[0]
    bill_days = {line.charge_date for line in bills_until(datetime.now(UTC).date())}
    # Every bill day has a publication day at most 5 days before it (the longest ECB gap).
    for day in bill_days:
        assert any(day - timedelta(days=back) in stored for back in range(6)), day


def test_sigterm_stops_the_sandbox_cleanly(sandbox: RunningSandbox) -> None:
    sandbox.process.send_signal(signal.SIGTERM)
    assert sandbox.process.wait(timeout=20) == 0
    assert sandbox.process.stdout is not None
    assert "stopped" in sandbox.process.stdout.read()


def test_a_busy_port_is_a_clear_message(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = holder.getsockname()[1]
        ports = [*free_ports(1), busy, *free_ports(3)]
        done = subprocess.run(
            [str(BIN / "cost-sandbox")],
            env=sandbox_env(tmp_path, ports),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2
    assert f"port {busy} (SANDBOX_AZURE_PORT) on 127.0.0.1 is already in use" in done.stderr
    assert not (tmp_path / "customers.yaml").exists()
