"""azure_costs when the Cost Management query API misbehaves for one customer's billing account
(a fault-injecting proxy in front of the Azure simulator): 429 bursts with Microsoft's
retry-after header and passing 5xx are retried; a lasting 5xx, an answer slower than the client's
timeout or a truncated body fail the run saying what happened; an unknown extra field is
tolerated; a missing required field fails clearly. A failed run leaves the window's previous data
as it was, and the other customer's run succeeds."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cost_local.sandbox.azure import AzureCostManagement
from cost_pipelines.assets.azure import AZURE
from cost_pipelines.resources.azure import AzureResource
from cost_pipelines.resources.clickhouse import ClickHouseResource
from tests.pipelines.rest_helpers import failure, run_costs
from tests.pipelines.test_azure_costs import (
    APP,
    END,
    SECRET,
    START,
    account,
    bills,
    entry,
    expected_sums,
    stored_sums,
)
from tests.pipelines.test_vultr_chaos import Case
from tests.support.chaos import Chaos, Fault, chaos_proxy
from tests.support.customers import write_customers

pytestmark = pytest.mark.slow
RESOURCE = AzureResource(
    retry_attempts=3, retry_base_delay_s=0.01, retry_max_delay_s=2.0, read_timeout_s=1.0
)
QPU_RETRY_AFTER = "x-ms-ratelimit-microsoft.costmanagement-qpu-retry-after"
CASES = {
    "429-burst-with-retry-after": Case(
        [Fault("status", 429, {QPU_RETRY_AFTER: "1"}, times=2)], None
    ),
    "passing-5xx": Case([Fault("status", 503, times=1), Fault("status", 500, times=1)], None),
    "lasting-5xx": Case([Fault("status", 500)], "HTTP 500"),
    "slower-than-the-timeout": Case([Fault("slow", seconds=2.5)], "ReadTimeout"),
    "truncated-body": Case([Fault("truncate")], "RemoteProtocolError"),
    "unknown-extra-field": Case([Fault("add_field", name="x_new_azure_field")], None),
    "missing-required-field": Case(
        [Fault("drop_field", name="columns")], "answered without the required field 'columns'"
    ),
}


@pytest.fixture
def chaos(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[AzureCostManagement, Chaos]]:
    victim = account("contoso").billing_account_id
    with (
        AzureCostManagement([APP], page_size=40, qpu_per_10_seconds=1000) as server,
        chaos_proxy(server.base_url, victim=victim) as proxy,
    ):
        server.set_records([*bills("contoso"), *bills("fabrikam")])
        monkeypatch.setenv("TEST_AZURE_ENDPOINT", proxy.url)
        monkeypatch.setenv("AZ_TENANT", APP.tenant_id)
        monkeypatch.setenv("AZ_CLIENT", APP.client_id)
        monkeypatch.setenv("AZ_SECRET", SECRET)
        yield server, proxy


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_a_misbehaving_azure_api_fails_or_is_survived_and_loses_nothing(
    tmp_path: Path,
    chaos: tuple[AzureCostManagement, Chaos],
    warehouse_resource: ClickHouseResource,
    case: str,
) -> None:
    _, proxy = chaos
    customers = write_customers(
        tmp_path / "c.yaml", {"contoso": entry("contoso"), "fabrikam": entry("fabrikam")}
    )
    both = ["contoso", "fabrikam"]
    first = run_costs(AZURE, RESOURCE, customers, both, warehouse_resource, START, END)
    assert all(result.success for result in first.values())
    before = stored_sums(warehouse_resource, "contoso")
    assert before == expected_sums(bills("contoso"), START, END)

    proxy.faults = CASES[case].faults
    results = run_costs(AZURE, RESOURCE, customers, both, warehouse_resource, START, END)

    assert proxy.applied, "the fault was never injected"
    expected = CASES[case].fails_with
    if expected is None:
        assert results["contoso"].success, failure(results["contoso"])
    else:
        message = failure(results["contoso"])
        assert expected in message, message
        assert SECRET not in message
    assert stored_sums(warehouse_resource, "contoso") == before
    assert results["fabrikam"].success, failure(results["fabrikam"])
    assert stored_sums(warehouse_resource, "fabrikam") == expected_sums(
        bills("fabrikam"), START, END
    )
