"""Collection control end to end: the API drives a real Dagster, which collects from moto into the
warehouse. The last test stops Dagster, so it stays last in this module."""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from dagster import __version__ as dagster_version
from fastapi.testclient import TestClient

from cost_api.control.client import DagsterClient
from cost_api.dependencies import get_dagster
from cost_api.main import create_app
from cost_api.settings import ApiSettings
from cost_local.dagster_dev import stop_dagster
from cost_local.sandbox.aws import cost_explorer_results, queue_cost_and_usage
from cost_local.sandbox.bills import generate_bills
from cost_local.sandbox.catalog import demo_accounts
from cost_pipelines.assets.aws import MONTHLY_FEES
from cost_pipelines.definitions import defs
from tests.control.stack import (
    GOOD_SECRET,
    REJECTED_KEY_ID,
    REJECTED_SECRET,
    Stack,
)
from tests.pipelines.aws_helpers import ledger_by_day_and_service

pytestmark = pytest.mark.slow

START, END = date(2026, 11, 1), date(2026, 11, 4)
TRIGGER = "/api/v2/costs/trigger-collection"
RUN_TAGS = """
query Tags($runId: ID!) { runOrError(runId: $runId) { ... on Run { tags { key value } } } }
"""
RUNS_OF = """
query Runs($filter: RunsFilter) {
  runsOrError(filter: $filter) { ... on Runs { results { runId status } } }
}
"""


def trigger(stack: Stack, body: dict[str, Any], token: str | None = None) -> httpx.Response:
    return stack.api.post(TRIGGER, json=body, headers=stack.headers(token))


def queued_detail(results: list[dict[str, Any]], lines: list[Any]) -> tuple[int, Decimal]:
    """Lines the run stores and their USD total: one line per detail group, a monthly fee as one
    line per day of the window it covers; the total is what the sandbox's ledger says the
    window's days hold (monthly fees in daily shares)."""
    count = 0
    for page in results:
        for period in page["ResultsByTime"]:
            day = date.fromisoformat(period["TimePeriod"]["Start"])
            for group in period["Groups"]:
                if len(group["Keys"]) != 2 or not START <= day < END:
                    continue
                month_end = (day.replace(day=1) + timedelta(days=32)).replace(day=1)
                fee = group["Keys"][1] in MONTHLY_FEES
                count += (min(END, month_end) - day).days if fee else 1
    total = sum(ledger_by_day_and_service(lines, START, END).values(), Decimal(0))
    return count, total


def test_a_triggered_collection_succeeds_with_rows_written_and_shows_in_history(
    stack: Stack,
) -> None:
    account = next(a for a in demo_accounts("acme") if a.provider == "aws")
    lines = generate_bills([account], START, END, seed=5)
    results = cost_explorer_results(lines, START, END)
    queue_cost_and_usage(stack.moto_url, results)
    expected_rows, expected_total = queued_detail(results, lines)

    answer = trigger(stack, {"customer_id": "acme", "start": "2026-11-01", "end": "2026-11-04"})

    assert answer.status_code == 202, answer.text
    [task] = answer.json()["tasks"]
    assert (task["provider"], task["status"], task["existing"]) == ("aws", "queued", False)
    assert task["dagster_url"] == f"{stack.dagster_url}/runs/{task['task_id']}"
    assert task["status_url"].endswith(f"/api/v2/costs/collection-status/{task['task_id']}")

    status = stack.wait_for_end(task["task_id"])
    assert status["status"] == "success", status
    assert status["rows_written"] == expected_rows > 0
    assert status["totals"] == {"USD": format(expected_total.normalize(), "f")}
    assert (status["window_start"], status["window_end"]) == ("2026-11-01", "2026-11-04")
    assert status["created_at"] <= status["started_at"] <= status["ended_at"]
    assert status["error"] is None

    history = stack.api.get("/api/v2/costs/acme/collection-history", headers=stack.headers())
    assert history.status_code == 200
    newest = history.json()["data"][0]
    assert newest["task_id"] == task["task_id"]
    assert (newest["customer_id"], newest["provider"]) == ("acme", "aws")
    assert (newest["trigger"], newest["requested_by"]) == ("manual", "ops-team")
    tags = stack.graphql(RUN_TAGS, {"runId": task["task_id"]})["runOrError"]["tags"]
    assert {t["key"]: t["value"] for t in tags}.items() >= {
        "customer_id": "acme",
        "provider": "aws",
        "trigger": "manual",
        "requested_by": "ops-team",
        "dagster/partition": "acme",
    }.items()

    collectors = stack.api.get("/api/v2/collectors/status", headers=stack.headers()).json()
    [acme] = [c for c in collectors["collectors"] if c["customer_id"] == "acme"]
    assert (acme["state"], acme["last_success_task_id"]) == ("fresh", task["task_id"])
    # The checks the run evaluated on the window it wrote, newest first per check.
    checks = {c["name"]: c for c in acme["checks"]}
    assert set(checks) == {"focus_conformance", "reconciles_with_provider"}
    assert all(c["passed"] and c["task_id"] == task["task_id"] for c in checks.values())
    # Cost reads carry the same results in their completeness, from Dagster (cached).
    total = stack.api.get(
        "/api/v2/costs/acme/aws/total",
        params={"start": "2026-11-01", "end": "2026-11-04"},
        headers=stack.headers(),
    ).json()
    [completeness] = total["completeness"]
    assert completeness["checks_passed"] is True
    assert {c["name"] for c in completeness["checks"]} == set(checks)


def test_history_filters_by_status_and_provider_and_pages_with_a_cursor(stack: Stack) -> None:
    tasks = trigger(stack, {"customer_id": "badco"}).json()["tasks"]  # aws and vultr: 2 runs
    for task in tasks:
        stack.wait_for_end(task["task_id"])
    url = "/api/v2/costs/badco/collection-history"

    first = stack.api.get(url, params={"limit": 1}, headers=stack.headers()).json()
    second = stack.api.get(
        url, params={"limit": 1, "cursor": first["next_cursor"]}, headers=stack.headers()
    ).json()
    failures = stack.api.get(url, params={"status": "failure"}, headers=stack.headers()).json()
    successes = stack.api.get(url, params={"status": "success"}, headers=stack.headers()).json()
    vultr = stack.api.get(url, params={"provider": "vultr"}, headers=stack.headers()).json()
    other_provider = stack.api.get(url, params={"provider": "gcp"}, headers=stack.headers()).json()

    assert first["count"] >= 2 and first["next_cursor"] == first["data"][0]["task_id"]
    assert second["data"][0]["task_id"] != first["data"][0]["task_id"]
    assert second["data"][0]["created_at"] <= first["data"][0]["created_at"]
    assert failures["count"] >= 2 and {r["status"] for r in failures["data"]} == {"failure"}
    assert (successes["count"], successes["data"]) == (0, [])
    assert vultr["count"] >= 1 and {r["provider"] for r in vultr["data"]} == {"vultr"}
    assert other_provider["data"] == []


def test_rejected_credentials_fail_with_the_cause_and_no_secret(stack: Stack) -> None:
    [task] = trigger(stack, {"customer_id": "badco", "providers": ["aws"]}).json()["tasks"]

    status = stack.wait_for_end(task["task_id"])

    assert status["status"] == "failure"
    assert status["rows_written"] is None and status["totals"] == {}
    error = status["error"]
    assert error["step"] == "aws_costs"
    assert "AWS rejected the credentials" in error["message"]
    assert "UnrecognizedClientException" in error["message"]
    assert error["chain"][-1]["message"] == error["message"]
    body = stack.api.get(
        f"/api/v2/costs/collection-status/{task['task_id']}", headers=stack.headers()
    ).text
    for secret in (REJECTED_SECRET, REJECTED_KEY_ID, GOOD_SECRET):
        assert secret not in body
    collectors = stack.api.get("/api/v2/collectors/status", headers=stack.headers()).json()
    [badco] = [
        c for c in collectors["collectors"] if (c["customer_id"], c["provider"]) == ("badco", "aws")
    ]
    assert (badco["state"], badco["last_run_status"]) == ("failing", "failure")


def test_two_triggers_at_once_for_the_same_pair_start_one_run(stack: Stack) -> None:
    barrier = threading.Barrier(4)
    # Two requests to this API process, and two to a second process's worth of app (own locks).
    with TestClient(create_app()) as other_process:
        clients = [stack.api, stack.api, other_process, other_process]

        def fire(client: TestClient) -> dict[str, Any]:
            barrier.wait()
            answer = client.post(TRIGGER, json={"customer_id": "racer"}, headers=stack.headers())
            assert answer.status_code == 202, answer.text
            [task] = answer.json()["tasks"]
            return task

        with ThreadPoolExecutor(4) as pool:
            tasks = list(pool.map(fire, clients))

    assert len({t["task_id"] for t in tasks}) == 1
    assert sum(not t["existing"] for t in tasks) == 1  # the one that launched it
    run_filter = {"tags": [{"key": "customer_id", "value": "racer"}]}
    runs = stack.graphql(RUNS_OF, {"filter": run_filter})["runsOrError"]["results"]
    live = [r for r in runs if r["status"] not in ("CANCELED", "CANCELING")]
    assert [r["runId"] for r in live] == [tasks[0]["task_id"]]
    stack.wait_for_end(tasks[0]["task_id"])


def test_a_key_sees_no_task_of_another_customer(stack: Stack) -> None:
    [task] = trigger(stack, {"customer_id": "badco", "providers": ["aws"]}).json()["tasks"]
    status_url = f"/api/v2/costs/collection-status/{task['task_id']}"

    foreign = stack.api.get(status_url, headers=stack.headers(stack.outsider_token))
    unknown = stack.api.get(
        "/api/v2/costs/collection-status/00000000-0000-0000-0000-000000000000",
        headers=stack.headers(),
    )
    history = stack.api.get(
        "/api/v2/costs/badco/collection-history", headers=stack.headers(stack.outsider_token)
    )
    launch = trigger(stack, {"customer_id": "badco"}, token=stack.outsider_token)

    assert (foreign.status_code, foreign.json()) == (unknown.status_code, unknown.json())
    assert foreign.status_code == 404
    assert history.status_code == 403 and launch.status_code == 403


class RecordingTransport(httpx.AsyncHTTPTransport):
    """The real HTTP transport to Dagster, noting the name of every GraphQL operation sent."""

    def __init__(self) -> None:
        super().__init__()
        self.operations: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        document = json.loads(request.content)["query"]
        self.operations.append(document.split("(", 1)[0].split()[-1])
        return await super().handle_async_request(request)


@pytest.fixture
def recorded(stack: Stack) -> Iterator[tuple[TestClient, RecordingTransport]]:
    """The API with its Dagster client on a recording transport."""
    settings = ApiSettings()
    transport = RecordingTransport()

    async def recording_dagster() -> AsyncIterator[DagsterClient]:
        dagster = DagsterClient(
            settings.dagster_graphql_url, settings.dagster_location_name, transport=transport
        )
        try:
            yield dagster
        finally:
            await dagster.aclose()

    app = create_app()
    app.dependency_overrides[get_dagster] = recording_dagster
    with TestClient(app) as client:
        yield client, transport


def test_history_reads_no_run_logs_and_status_gives_the_cause(
    stack: Stack, recorded: tuple[TestClient, RecordingTransport]
) -> None:
    client, transport = recorded
    history = client.get(
        "/api/v2/costs/badco/collection-history",
        params={"status": "failure"},
        headers=stack.headers(),
    ).json()
    history_operations = list(transport.operations)
    status = client.get(history["data"][0]["status_url"], headers=stack.headers()).json()

    assert len(history["data"]) >= 2
    assert {(r["status"], r["error"]) for r in history["data"]} == {("failure", None)}
    assert history_operations == ["Runs"]  # one request for the page, none per failed run
    assert status["status"] == "failure" and status["error"]["step"] in ("aws_costs", "vultr_costs")
    assert transport.operations[1:] == ["Run", "RunLogs"]


def test_a_key_asking_for_another_customers_run_never_reads_its_logs(
    stack: Stack, recorded: tuple[TestClient, RecordingTransport]
) -> None:
    client, transport = recorded
    history = client.get(
        "/api/v2/costs/badco/collection-history",
        params={"status": "failure", "limit": 1},
        headers=stack.headers(),
    ).json()
    transport.operations.clear()

    answer = client.get(
        history["data"][0]["status_url"], headers=stack.headers(stack.outsider_token)
    )

    assert answer.status_code == 404
    assert transport.operations == ["Run"]


def test_trigger_for_a_provider_the_customer_does_not_have_is_rejected(stack: Stack) -> None:
    answer = trigger(stack, {"customer_id": "acme", "providers": ["aws", "gcp"]})
    unknown_customer = trigger(stack, {"customer_id": "other"}, token=stack.outsider_token)
    backwards = trigger(stack, {"customer_id": "acme", "start": "2026-11-04", "end": "2026-11-01"})

    assert answer.status_code == 422
    assert "gcp" in answer.json()["detail"] and "acme" in answer.json()["detail"]
    assert unknown_customer.status_code == 404
    assert "not in the customers file" in unknown_customer.json()["detail"]
    assert backwards.status_code == 422


def test_collectors_status_reports_the_schedule_state_and_next_tick(stack: Stack) -> None:
    stack.set_schedule(running=True)
    try:
        running = stack.api.get("/api/v2/collectors/status", headers=stack.headers()).json()
    finally:
        stack.set_schedule(running=False)
    stopped = stack.api.get("/api/v2/collectors/status", headers=stack.headers()).json()

    schedules = {s["name"]: s for s in running["schedules"]}
    # Every schedule of the code location, as the API reads them from Dagster.
    assert set(schedules) == {schedule.name for schedule in defs.schedules or []}
    assert "collect_costs_every_15_minutes" in schedules
    schedule = schedules["collect_costs_every_15_minutes"]
    assert (schedule["name"], schedule["cron"], schedule["running"]) == (
        "collect_costs_every_15_minutes",
        "*/15 * * * *",
        True,
    )
    next_tick = datetime.fromisoformat(schedule["next_tick"])
    assert datetime.now(UTC) < next_tick <= datetime.now(UTC) + timedelta(minutes=15)
    assert next_tick.minute % 15 == 0 and next_tick.second == 0
    [stopped_collection] = [
        s for s in stopped["schedules"] if s["name"] == "collect_costs_every_15_minutes"
    ]
    assert stopped_collection["running"] is False
    pairs = {(c["customer_id"], c["provider"]) for c in running["collectors"]}
    assert pairs == {("acme", "aws"), ("badco", "aws"), ("badco", "vultr"), ("racer", "aws")}


def test_health_reports_the_api_the_warehouse_and_dagster_up(stack: Stack) -> None:
    answer = stack.api.get("/health")

    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "up"
    assert body["warehouse"]["status"] == body["dagster"]["status"] == "up"
    assert body["dagster"]["version"] == dagster_version  # the webserver's, as pinned
    assert body["warehouse"]["version"].startswith("26.")
    assert body["warehouse"]["latency_ms"] >= 0 and body["dagster"]["latency_ms"] >= 0


def test_health_is_down_when_dagster_lacks_the_code_location(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGSTER_LOCATION_NAME", "not_deployed")
    try:
        with TestClient(create_app()) as misconfigured:
            answer = misconfigured.get("/health")
    finally:
        monkeypatch.undo()

    assert answer.status_code == 503
    assert answer.json()["dagster"]["status"] == "down"
    assert "not_deployed" in answer.json()["dagster"]["detail"]


def test_with_dagster_stopped_status_history_and_health_answer_503(stack: Stack) -> None:
    [task] = stack.api.get("/api/v2/costs/acme/collection-history", headers=stack.headers()).json()[
        "data"
    ][:1]
    stop_dagster(stack.dagster)

    status = stack.api.get(
        f"/api/v2/costs/collection-status/{task['task_id']}", headers=stack.headers()
    )
    history = stack.api.get("/api/v2/costs/acme/collection-history", headers=stack.headers())
    health = stack.api.get("/health")
    launch = trigger(stack, {"customer_id": "acme"})

    # Cost reads never fail for Dagster: checks are cached or unknown, the numbers are there.
    total = stack.api.get("/api/v2/costs/acme/aws/total", headers=stack.headers())
    assert total.status_code == 200, total.text
    assert total.json()["completeness"][0]["provider"] == "aws"

    for answer in (status, history, launch):
        assert answer.status_code == 503
        assert answer.json()["detail"].startswith("dagster unavailable")
        assert int(answer.headers["Retry-After"]) >= 1  # a 503 says when to try again
    assert health.status_code == 503
    assert health.json()["dagster"]["status"] == "down"
    assert health.json()["warehouse"]["status"] == "up"
    assert health.json()["status"] == "down"
