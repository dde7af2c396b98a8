"""gcp_costs when BigQuery misbehaves for one customer (a fault-injecting proxy in front of the
local BigQuery; the customer runs its jobs in a project of its own): bursts of 429 with
Retry-After and of Google's 403 rateLimitExceeded, and passing 5xx, are retried; a lasting 5xx,
a quotaExceeded, an answer slower than the client's timeout or a truncated body fail the run
saying what happened; an unknown extra field is tolerated; a missing required field fails
clearly. A failed run leaves the window's previous data as it was, and the other customer's run
succeeds."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cost_local.sandbox.gcp import BigQueryBilling, new_service_account_key
from cost_local.sandbox.gcp_query import BigQueryError
from cost_local.sandbox.simulator import dumps
from cost_pipelines.assets.gcp import GCP
from cost_pipelines.resources.clickhouse import ClickHouseResource
from cost_pipelines.resources.gcp import GcpResource
from tests.pipelines.rest_helpers import failure, run_costs
from tests.pipelines.test_gcp_costs import END, START, bills, entry, exact, expected, export, stored
from tests.pipelines.test_vultr_chaos import Case
from tests.support.chaos import Chaos, Fault, chaos_proxy
from tests.support.customers import write_customers

pytestmark = pytest.mark.slow
READER = "collector@initech-billing.iam.gserviceaccount.com"
JOBS_PROJECT = "initech-jobs"  # where the faulted customer runs its query jobs
RESOURCE = GcpResource(
    retry_attempts=3, retry_base_delay_s=0.01, retry_max_delay_s=2.0, read_timeout_s=1.0
)


def google_error(status: int, reason: str, message: str, *, times: int | None = None) -> Fault:
    """An error as BigQuery answers it: {"error": {code, message, errors: [{reason}], status}}."""
    answer = BigQueryError(status, reason, message).response
    headers = {"Content-Type": "application/json; charset=UTF-8"}
    return Fault("status", status, headers, body=dumps(answer.body).encode(), times=times)


RATE = "Exceeded rate limits: too many api requests per user per method for this user_method."
CASES = {
    "429-burst-with-retry-after": Case(
        [
            Fault(
                "status",
                429,
                {"Retry-After": "1"},
                body=dumps(BigQueryError(429, "rateLimitExceeded", RATE).response.body).encode(),
                times=2,
            )
        ],
        None,
    ),
    "rate-limit-exceeded-burst": Case(
        [google_error(403, "rateLimitExceeded", RATE, times=2)], None
    ),
    "passing-5xx": Case(
        [
            google_error(503, "backendError", "Backend error", times=1),
            google_error(500, "internalError", "Internal error", times=1),
        ],
        None,
    ),
    "lasting-5xx": Case([google_error(500, "internalError", "Internal error")], "(HTTP 500)"),
    "lasting-rate-limit": Case(
        [google_error(403, "rateLimitExceeded", RATE)],
        "gave up after 3 attempts (rateLimitExceeded)",
    ),
    "quota-exceeded": Case(
        [google_error(403, "quotaExceeded", "Quota exceeded: your project exceeded its quota")],
        "was refused (HTTP 403: quotaExceeded: Quota exceeded",
    ),
    "slower-than-the-timeout": Case([Fault("slow", seconds=2.5)], "ReadTimeout"),
    "truncated-body": Case([Fault("truncate")], "RemoteProtocolError"),
    "unknown-extra-field": Case([Fault("add_field", name="x_new_bigquery_field")], None),
    "missing-schema": Case(
        [Fault("drop_field", name="schema")], "answered without the required field 'schema'"
    ),
    "missing-rows": Case([Fault("drop_field", name="rows")], "rows (pages without their rows)"),
}


def jobs_elsewhere(customer_id: str) -> dict[str, Any]:
    """The customer's entry, its query jobs run in JOBS_PROJECT (options.project)."""
    customer = entry(customer_id)
    customer["providers"]["gcp"]["options"]["project"] = JOBS_PROJECT
    return customer


@pytest.fixture
def chaos(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[BigQueryBilling, Chaos]]:
    key = new_service_account_key(READER, "initech-billing", "")
    lines = [*bills("initech", 5), *bills("hooli", 6)]
    exports = [export("initech"), export("hooli")]
    with (
        BigQueryBilling([key], exports, lines, page_size=30) as server,
        chaos_proxy(server.base_url, victim=f"/projects/{JOBS_PROJECT}/") as proxy,
    ):
        key["token_uri"] = f"{server.base_url}/token"  # the token endpoint is never faulted
        (tmp_path / "key.json").write_text(json.dumps(key), encoding="utf-8")
        monkeypatch.setenv("TEST_BIGQUERY_ENDPOINT", proxy.url)
        monkeypatch.setenv("GCP_KEY_FILE", str(tmp_path / "key.json"))
        yield server, proxy


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_a_misbehaving_bigquery_fails_or_is_survived_and_loses_nothing(
    tmp_path: Path,
    chaos: tuple[BigQueryBilling, Chaos],
    warehouse_resource: ClickHouseResource,
    case: str,
) -> None:
    bigquery, proxy = chaos
    customers = write_customers(
        tmp_path / "c.yaml", {"initech": jobs_elsewhere("initech"), "hooli": entry("hooli")}
    )
    both = ["initech", "hooli"]
    first = run_costs(GCP, RESOURCE, customers, both, warehouse_resource, START, END)
    assert all(result.success for result in first.values())
    before = exact(stored(warehouse_resource, "initech"))
    assert before == exact(expected(bigquery, "initech"))

    proxy.faults = CASES[case].faults
    results = run_costs(GCP, RESOURCE, customers, both, warehouse_resource, START, END)

    assert proxy.applied, "the fault was never injected"
    expected_failure = CASES[case].fails_with
    if expected_failure is None:
        assert results["initech"].success, failure(results["initech"])
    else:
        message = failure(results["initech"])
        assert expected_failure in message, message
        assert "PRIVATE KEY" not in message and "rejected the credentials" not in message
    assert exact(stored(warehouse_resource, "initech")) == before  # intact either way
    assert results["hooli"].success, failure(results["hooli"])
    assert exact(stored(warehouse_resource, "hooli")) == exact(expected(bigquery, "hooli"))
