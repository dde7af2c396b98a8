"""Collection control when things go wrong, against the real Dagster of tests/control: a frozen
warehouse (SIGSTOP: alive, port open, never answers) with 60 cost reads hung on it never stalls
the routes that do not need it, and each read gets a 503 with Retry-After at its deadline; an
explicit window asked while the pair's trailing run is in flight gets a run of its own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from typing import Any

import httpx
import pytest

from cost_pipelines.warehouse.connection import WarehouseSettings, create_client
from cost_pipelines.warehouse.schema import migrate
from tests.control.stack import Stack, aws_entry
from tests.support.customers import write_customers
from tests.support.ports import PortPicker
from tests.support.processes import REPO_ROOT, WarehouseProcess, start_warehouse

pytestmark = pytest.mark.slow

HUNG_READS = 60
READ_DEADLINE_S = 30  # long enough that a starved route would answer only after the reads


@dataclass
class FrozenApi:
    url: str
    warehouse: WarehouseProcess
    headers: dict[str, str]


@pytest.fixture(scope="module")
def api(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory, free_port: PortPicker
) -> Iterator[FrozenApi]:
    """`cost-api` as production runs it, on a warehouse of its own (this test freezes it) and
    the control stack's Dagster."""
    tmp = tmp_path_factory.mktemp("frozen")
    warehouse = start_warehouse(tmp / "warehouse")
    client = create_client(
        WarehouseSettings(warehouse_port=warehouse.port, clickhouse_database="default")
    )
    migrate(client)
    client.close()
    customers = write_customers(
        tmp / "customers.yaml", {"acme": aws_entry("acme", "ACME", "MOTO_URL")}
    )
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "API_PORT": str(port),
        "WAREHOUSE_PORT": str(warehouse.port),
        "CLICKHOUSE_DATABASE": "default",
        "CLICKHOUSE_QUERY_TIMEOUT_S": str(READ_DEADLINE_S * 3),
        "READ_DEADLINE_S": str(READ_DEADLINE_S),
        "API_KEYS_FILE": str(stack.keys_file),
        "CUSTOMERS_FILE": str(customers),
        "DAGSTER_GRAPHQL_URL": f"{stack.dagster_url}/graphql",
    }
    env.pop("CLICKHOUSE_URL", None)
    log = (tmp / "api.log").open("wb")
    command = "import sys; from cost_api.main import main; sys.exit(main())"
    proc = subprocess.Popen(
        [sys.executable, "-c", command],
        env=env,
        cwd=REPO_ROOT,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/openapi.json", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "cost-api did not start"
            time.sleep(0.3)
        yield FrozenApi(url, warehouse, stack.headers())
    finally:
        os.kill(warehouse.pid, signal.SIGCONT)
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
        warehouse.stop()


def test_history_and_collectors_answer_while_sixty_reads_hang_on_a_frozen_warehouse(
    api: FrozenApi,
) -> None:
    read_url = f"{api.url}/api/v2/costs/acme/all/total"
    assert httpx.get(read_url, headers=api.headers, timeout=30).status_code == 200
    os.kill(api.warehouse.pid, signal.SIGSTOP)
    try:
        with ThreadPoolExecutor(HUNG_READS) as pool:
            reads = [
                pool.submit(httpx.get, read_url, headers=api.headers, timeout=300)
                for _ in range(HUNG_READS)
            ]
            time.sleep(2)  # let them all reach the API and the frozen warehouse
            history = httpx.get(
                f"{api.url}/api/v2/costs/acme/collection-history", headers=api.headers, timeout=300
            )
            collectors = httpx.get(
                f"{api.url}/api/v2/collectors/status", headers=api.headers, timeout=300
            )
            still_hung = sum(not read.done() for read in reads)
            answers = [read.result() for read in reads]
    finally:
        os.kill(api.warehouse.pid, signal.SIGCONT)
    assert history.status_code == 200, history.text
    assert collectors.status_code == 200, collectors.text
    assert still_hung == HUNG_READS, "history or collectors waited for the hung reads"
    assert {answer.status_code for answer in answers} == {503}
    for answer in answers:
        assert answer.headers["Retry-After"].isdigit()
        assert "deadline" in answer.json()["detail"], answer.text
    assert httpx.get(read_url, headers=api.headers, timeout=30).status_code == 200


TRIGGER = "/api/v2/costs/trigger-collection"


def trigger(stack: Stack, body: dict[str, Any]) -> dict[str, Any]:
    answer = stack.api.post(TRIGGER, json=body, headers=stack.headers())
    assert answer.status_code == 202, answer.text
    [task] = answer.json()["tasks"]
    return task  # type: ignore[no-any-return]


def test_an_explicit_window_asked_while_the_trailing_run_is_in_flight_gets_its_own_run(
    stack: Stack,
) -> None:
    start, end = date(2026, 10, 5), date(2026, 10, 8)
    window = {"start": start.isoformat(), "end": end.isoformat()}

    trailing = trigger(stack, {"customer_id": "acme", "providers": ["aws"]})
    backfill = trigger(stack, {"customer_id": "acme", "providers": ["aws"], **window})
    again = trigger(stack, {"customer_id": "acme", "providers": ["aws"], **window})

    assert backfill["task_id"] != trailing["task_id"], "the asked window was not dropped"
    assert backfill["existing"] is False
    assert (again["task_id"], again["existing"]) == (backfill["task_id"], True)
    stack.wait_for_end(trailing["task_id"])
    status = stack.wait_for_end(backfill["task_id"])
    assert status["status"] == "success", status
    # Its materialization reports the window it collected: the asked one.
    assert (status["window_start"], status["window_end"]) == (window["start"], window["end"])


def test_status_urls_come_from_the_public_base_url_never_the_host_header(stack: Stack) -> None:
    headers = {**stack.headers(), "Host": "attacker.example"}
    answer = stack.api.post(
        TRIGGER, json={"customer_id": "acme", "providers": ["aws"]}, headers=headers
    )
    assert answer.status_code == 202, answer.text
    [task] = answer.json()["tasks"]
    assert task["status_url"] == (
        f"http://127.0.0.1:8000/api/v2/costs/collection-status/{task['task_id']}"
    )
    history = stack.api.get("/api/v2/costs/acme/collection-history", headers=headers).json()
    assert all("attacker" not in item["status_url"] for item in history["data"])
    stack.wait_for_end(task["task_id"])


def test_a_history_cursor_that_is_unknown_or_of_another_customer_is_a_422(stack: Stack) -> None:
    foreign = trigger(stack, {"customer_id": "racer", "providers": ["aws"]})
    history = "/api/v2/costs/acme/collection-history"
    for cursor in ("00000000-0000-0000-0000-000000000000", foreign["task_id"]):
        answer = stack.api.get(history, params={"cursor": cursor}, headers=stack.headers())
        assert answer.status_code == 422, answer.text
        [error] = answer.json()["detail"]
        assert error["loc"] == ["query", "cursor"]
    own = stack.api.get(history, params={"limit": 1}, headers=stack.headers()).json()
    if own["next_cursor"]:
        page = stack.api.get(
            history, params={"limit": 1, "cursor": own["next_cursor"]}, headers=stack.headers()
        )
        assert page.status_code == 200, page.text
    stack.wait_for_end(foreign["task_id"])
