"""The customers file is read again at every tick of a running Dagster: a customer added to it is
a partition and collected at the next tick, and a removed one loses its partition (not its
history), with no restart of Dagster or its code location."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance, DagsterRun, DagsterRunStatus, RunsFilter

from cost_local.dagster_dev import start_dagster, stop_dagster, write_dagster_home
from cost_local.sandbox.aws import reset_moto
from cost_local.sandbox.ecb import EcbReferenceRates
from cost_pipelines.partitions import PARTITIONS_NAME
from cost_pipelines.resources.ecb import URL_ENV
from cost_pipelines.schedules import CRON_ENV, SCHEDULE_NAME
from tests.control.stack import GOOD_KEY_ID, GOOD_SECRET, aws_entry
from tests.support.customers import write_customers
from tests.support.ports import PortPicker
from tests.support.processes import REPO_ROOT, WarehouseProcess, own_database

pytestmark = pytest.mark.slow

TICK_TIMEOUT_S = 300.0  # the every-minute tick, the run queue and the run itself on 2 cores
FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[DagsterInstance]:
    """The instance the running Dagster writes to, read from this process."""
    write_dagster_home(tmp_path / "dagster", max_concurrent_runs=2, dequeue_interval_s=1)
    reader = DagsterInstance.from_config(str(tmp_path / "dagster"))
    yield reader
    reader.dispose()


def scheduled_run(instance: DagsterInstance, customer_id: str) -> DagsterRun:
    """The first run the daemon's tick launched for the customer, once it has ended."""
    deadline = time.monotonic() + TICK_TIMEOUT_S
    runs: list[DagsterRun] = []
    while time.monotonic() < deadline:
        tags = {"customer_id": customer_id, "dagster/schedule_name": SCHEDULE_NAME}
        runs = list(instance.get_runs(RunsFilter(tags=tags)))
        if runs and runs[-1].status in FINISHED:
            return runs[-1]
        time.sleep(2)
    raise AssertionError(f"no scheduled run of {customer_id} ended within the timeout: {runs}")


def test_a_running_dagster_collects_a_customer_added_to_the_file_at_the_next_tick(
    tmp_path: Path,
    instance: DagsterInstance,
    warehouse: WarehouseProcess,
    moto_url: str,
    free_port: PortPicker,
) -> None:
    reset_moto(moto_url)  # nothing queued: each collection answers an empty (valid) bill
    customers_file = write_customers(
        tmp_path / "customers.yaml", {"acme": aws_entry("acme", "AWS", "MOTO_URL")}
    )
    ecb = EcbReferenceRates()  # the rates' first-load sensor runs too: a local ECB, not the web
    ecb.start()
    with own_database(warehouse, "reload") as database:
        env = {
            **os.environ,
            URL_ENV: ecb.url,
            "CUSTOMERS_FILE": str(customers_file),
            "WAREHOUSE_PORT": str(warehouse.port),
            "CLICKHOUSE_DATABASE": database,
            "MOTO_URL": moto_url,
            "AWS_KEY_ID": GOOD_KEY_ID,
            "AWS_SECRET": GOOD_SECRET,
            CRON_ENV: "* * * * *",  # the daemon's own tick within a minute
        }
        dagster = start_dagster(
            tmp_path / "dagster",
            free_port(),
            REPO_ROOT / "workspace.yaml",
            env,
            log_file=tmp_path / "dagster.log",
        )
        try:
            first = scheduled_run(instance, "acme")
            assert first.status == DagsterRunStatus.SUCCESS, first
            assert instance.get_dynamic_partitions(PARTITIONS_NAME) == ["acme"]

            # The operator replaces acme by globex; Dagster keeps running.
            write_customers(customers_file, {"globex": aws_entry("globex", "AWS", "MOTO_URL")})

            added = scheduled_run(instance, "globex")
            assert added.status == DagsterRunStatus.SUCCESS, added
            assert added.tags["dagster/partition"] == "globex"
            assert instance.get_dynamic_partitions(PARTITIONS_NAME) == ["globex"]
            # acme is no partition any more; its collection stays in the history.
            history = instance.fetch_materializations(AssetKey("aws_costs"), limit=10).records
            assert {record.partition_key for record in history} == {"acme", "globex"}
        finally:
            stop_dagster(dagster)
            ecb.stop()
