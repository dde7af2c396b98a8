"""One real stack for the collection-control tests: a database of their own on the shared
warehouse endpoint, moto for AWS, an AWS peer that rejects every key, a Dagster webserver + daemon
with the project's code location, and the API in-process in front of them. Started once per module
(Dagster takes ~25 s on 2 cores)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from cost_api.auth import add_key
from cost_api.main import create_app
from cost_local.dagster_dev import start_dagster, stop_dagster, write_dagster_home
from cost_local.sandbox.aws import reset_moto
from cost_local.sandbox.ecb import EcbReferenceRates
from cost_pipelines.resources.ecb import URL_ENV
from tests.control.stack import (
    GOOD_KEY_ID,
    GOOD_SECRET,
    LOCATION,
    REJECTED_KEY_ID,
    REJECTED_SECRET,
    Stack,
    aws_entry,
    rejecting_aws,
)
from tests.support.customers import write_customers
from tests.support.ports import PortPicker
from tests.support.processes import REPO_ROOT, WarehouseProcess, own_database


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
    warehouse: WarehouseProcess,
    moto_url: str,
    free_port: PortPicker,
) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("control")
    reset_moto(moto_url)
    rejecting = rejecting_aws()
    customers_file = tmp / "customers.yaml"
    customers = {
        "acme": aws_entry("acme", "ACME", "MOTO_URL"),
        "badco": aws_entry("badco", "BADCO", "REJECTING_AWS_URL"),  # + vultr, below
        "racer": aws_entry("racer", "BADCO", "REJECTING_AWS_URL"),
    }
    customers["badco"]["providers"]["vultr"] = {
        "billing_account_ids": ["badco-vultr"],
        "credentials": {"api_key": "BADCO_SECRET"},
        "endpoint_url_env": "REJECTING_AWS_URL",
    }
    write_customers(customers_file, customers)
    # The rates' first-load sensor runs in this Dagster too: it reads a local ECB, never the web.
    ecb = EcbReferenceRates()
    ecb.start()
    with own_database(warehouse, "control") as database:
        env = {
            URL_ENV: ecb.url,
            "CUSTOMERS_FILE": str(customers_file),
            "WAREHOUSE_PORT": str(warehouse.port),
            "CLICKHOUSE_DATABASE": database,
            "MOTO_URL": moto_url,
            "REJECTING_AWS_URL": f"http://127.0.0.1:{rejecting.server_address[1]}",
            "ACME_KEY_ID": GOOD_KEY_ID,
            "ACME_SECRET": GOOD_SECRET,
            "BADCO_KEY_ID": REJECTED_KEY_ID,
            "BADCO_SECRET": REJECTED_SECRET,
        }
        home = tmp / "dagster"
        write_dagster_home(home, max_concurrent_runs=4, dequeue_interval_s=1)
        port = free_port()
        dagster = start_dagster(
            home,
            port,
            REPO_ROOT / "workspace.yaml",
            {**os.environ, **env},
            log_file=tmp / "dagster.log",
        )
        dagster_url = f"http://127.0.0.1:{port}"
        keys_file = tmp / "api_keys.yaml"
        token = add_key(keys_file, "ops-team", ["acme", "badco", "racer"])
        outsider = add_key(keys_file, "outsider", ["other"])
        api_env = {
            **env,
            "API_KEYS_FILE": str(keys_file),
            "DAGSTER_GRAPHQL_URL": f"{dagster_url}/graphql",
            "DAGSTER_UI_URL": dagster_url,
        }
        with pytest.MonkeyPatch.context() as patch:
            for name, value in api_env.items():
                patch.setenv(name, value)
            try:
                with TestClient(create_app()) as api:
                    stack = Stack(api, token, outsider, keys_file, moto_url, dagster_url, dagster)
                    [entry] = stack.graphql(LOCATION)["workspaceOrError"]["locationEntries"]
                    loaded = entry["locationOrLoadError"]
                    assert loaded["__typename"] == "RepositoryLocation", f"code location: {loaded}"
                    # The 15-minute tick would start runs of its own mid-test: the tests trigger.
                    stack.set_schedule(running=False)
                    yield stack
            finally:
                stop_dagster(dagster)
                rejecting.shutdown()
                rejecting.server_close()
                ecb.stop()
