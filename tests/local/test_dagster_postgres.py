"""Dagster on PostgreSQL, as production runs it: deploy/dagster.postgres.yaml as is, Debian's
PostgreSQL on a free port, the daemon's own scheduled tick collecting from moto into the warehouse;
the runs, materializations, checks and ticks land in PostgreSQL and the API reads them."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cost_api.auth import add_key
from cost_api.main import create_app
from cost_local.dagster_dev import start_dagster, stop_dagster
from cost_local.postgres import PostgresServer, PostgresUnavailable, running_postgres
from cost_local.sandbox.aws import reset_moto
from cost_pipelines.schedules import CRON_ENV, SCHEDULE_NAME
from tests.control.stack import GOOD_KEY_ID, GOOD_SECRET, aws_entry
from tests.support.customers import write_customers
from tests.support.ports import PortPicker
from tests.support.processes import REPO_ROOT, WarehouseProcess, own_database

pytestmark = pytest.mark.slow

EXAMPLE = REPO_ROOT / "deploy" / "dagster.postgres.yaml"
TICK_TIMEOUT_S = 240.0  # the every-minute tick, the run queue and the run itself on 2 cores


@pytest.fixture(scope="module")
def postgres(free_port: PortPicker) -> Iterator[PostgresServer]:
    # Under /tmp, not pytest's 0700 root-owned tmp: as root the server runs as `postgres`.
    base = Path(tempfile.mkdtemp(prefix="cost-pg-"))
    try:
        with running_postgres(base, free_port()) as server:
            yield server
    except PostgresUnavailable as exc:
        if os.environ.get("CI"):
            raise  # `make test` installs it; CI must run this test, never skip it
        pytest.skip(str(exc))
    finally:
        shutil.rmtree(base, ignore_errors=True)


def pg_rows(server: PostgresServer, sql: str, *params: object) -> list[tuple[Any, ...]]:
    import psycopg2  # dagster-postgres's driver (the `postgres` extra)

    with (
        psycopg2.connect(
            host="127.0.0.1",
            port=server.port,
            user=server.user,
            password=server.password,
            dbname=server.database,
        ) as connection,
        connection.cursor() as cursor,
    ):
        cursor.execute(sql, params)
        return list(cursor.fetchall())


def test_a_scheduled_tick_runs_on_postgres_storage_and_the_api_reads_it(
    tmp_path: Path,
    postgres: PostgresServer,
    warehouse: WarehouseProcess,
    moto_url: str,
    free_port: PortPicker,
) -> None:
    reset_moto(moto_url)
    customers_file = tmp_path / "customers.yaml"
    write_customers(customers_file, {"acme": aws_entry("acme", "ACME", "MOTO_URL")})
    home = tmp_path / "dagster"
    home.mkdir()
    shutil.copy(EXAMPLE, home / "dagster.yaml")  # the example itself, not a test variant
    with own_database(warehouse, "pg") as database:
        env = {
            **os.environ,
            **postgres.env(),
            "CUSTOMERS_FILE": str(customers_file),
            "WAREHOUSE_PORT": str(warehouse.port),
            "CLICKHOUSE_DATABASE": database,
            "MOTO_URL": moto_url,
            "ACME_KEY_ID": GOOD_KEY_ID,
            "ACME_SECRET": GOOD_SECRET,
            CRON_ENV: "* * * * *",  # the daemon's own tick within a minute
        }
        port = free_port()
        dagster = start_dagster(
            home, port, REPO_ROOT / "workspace.yaml", env, log_file=tmp_path / "dagster.log"
        )
        try:
            run_id = wait_for_scheduled_success(postgres)
            materialized = pg_rows(
                postgres,
                "SELECT asset_key, partition FROM event_logs "
                "WHERE run_id = %s AND dagster_event_type = 'ASSET_MATERIALIZATION'",
                run_id,
            )
            assert materialized == [('["aws_costs"]', "acme")]
            checks = pg_rows(
                postgres,
                "SELECT check_name, execution_status FROM asset_check_executions "
                "WHERE run_id = %s ORDER BY check_name",
                run_id,
            )
            assert checks == [
                ("collected_within_poll_interval", "SUCCEEDED"),
                ("focus_conformance", "SUCCEEDED"),
                ("reconciles_with_provider", "SUCCEEDED"),
            ]
            ticks = pg_rows(
                postgres,
                # the schedule storage's record of the tick that launched the run
                "SELECT count(*) FROM job_ticks WHERE type = 'SCHEDULE' AND status = 'SUCCESS' "
                "AND strpos(tick_body, %s) > 0",
                run_id,
            )
            assert ticks == [(1,)]

            keys_file = tmp_path / "api_keys.yaml"
            token = add_key(keys_file, "ops", ["acme"])
            api_env = {
                "API_KEYS_FILE": str(keys_file),
                "DAGSTER_GRAPHQL_URL": f"http://127.0.0.1:{port}/graphql",
                "DAGSTER_UI_URL": f"http://127.0.0.1:{port}",
                "CUSTOMERS_FILE": str(customers_file),
                "WAREHOUSE_PORT": str(warehouse.port),
                "CLICKHOUSE_DATABASE": database,
            }
            with pytest.MonkeyPatch.context() as patch:
                for name, value in api_env.items():
                    patch.setenv(name, value)
                with TestClient(create_app()) as api:
                    headers = {"Authorization": f"Bearer {token}"}
                    history = api.get("/api/v2/costs/acme/collection-history", headers=headers)
                    assert history.status_code == 200, history.text
                    runs = {r["task_id"]: r for r in history.json()["data"]}
                    assert runs[run_id]["trigger"] == "scheduled"
                    assert runs[run_id]["status"] == "success"
                    status = api.get(f"/api/v2/costs/collection-status/{run_id}", headers=headers)
                    assert status.status_code == 200, status.text
                    assert (status.json()["status"], status.json()["provider"]) == (
                        "success",
                        "aws",
                    )
        finally:
            stop_dagster(dagster)


def wait_for_scheduled_success(postgres: PostgresServer) -> str:
    """The run id of the schedule's first run for acme/aws once it succeeded, read from the run
    storage in PostgreSQL (the daemon launched it; nothing here triggers anything)."""
    deadline = time.monotonic() + TICK_TIMEOUT_S
    seen: list[tuple[Any, ...]] = []
    while time.monotonic() < deadline:
        seen = pg_rows(
            postgres,
            "SELECT r.run_id, r.status FROM runs r JOIN run_tags t ON t.run_id = r.run_id "
            "WHERE t.key = 'dagster/schedule_name' AND t.value = %s ORDER BY r.create_timestamp",
            SCHEDULE_NAME,
        )
        if seen and seen[0][1] in ("SUCCESS", "FAILURE", "CANCELED"):
            assert seen[0][1] == "SUCCESS", f"scheduled run ended {seen[0]}"
            return str(seen[0][0])
        time.sleep(2)
    raise AssertionError(f"no scheduled run succeeded within {TICK_TIMEOUT_S:.0f} s: {seen}")
