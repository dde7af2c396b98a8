"""azure_costs against the local Azure (Entra token + Cost Management query) and the warehouse."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from cost_local.sandbox.azure import AzureApp, AzureCostManagement
from cost_local.sandbox.bills import generate_bills, restate
from cost_local.sandbox.catalog import Account, demo_accounts
from cost_pipelines.assets.azure import AZURE
from cost_pipelines.resources.azure import AzureResource
from cost_pipelines.resources.clickhouse import ClickHouseResource
from tests.pipelines.rest_helpers import amounts as _amounts
from tests.pipelines.rest_helpers import (
    billed_by_day_and_service,
    failure,
    metadata,
    run_costs,
    stored_by_day_and_service,
)
from tests.support.customers import write_customers

pytestmark = pytest.mark.slow
START, END = date(2026, 10, 1), date(2026, 10, 15)
SECRET = "az-secret-value-1"
APP = AzureApp("tenant-a", "client-a", SECRET)
RESOURCE = AzureResource(retry_base_delay_s=0.01)


def account(customer_id: str) -> Account:
    return next(a for a in demo_accounts(customer_id) if a.provider == "azure")


def entry(customer_id: str, secret_env: str = "AZ_SECRET") -> dict[str, Any]:
    return {
        "providers": {
            "azure": {
                "billing_account_ids": [account(customer_id).billing_account_id],
                "credentials": {
                    "tenant_id": "AZ_TENANT",
                    "client_id": "AZ_CLIENT",
                    "client_secret": secret_env,
                },
                "endpoint_url_env": "TEST_AZURE_ENDPOINT",
            }
        }
    }


@pytest.fixture
def azure(monkeypatch: pytest.MonkeyPatch) -> Iterator[AzureCostManagement]:
    lines = [
        *generate_bills([account("contoso")], START, END, seed=5),
        *generate_bills([account("fabrikam")], START, END, seed=6),
    ]
    with AzureCostManagement([APP], lines, page_size=40, qpu_per_10_seconds=1000) as server:
        monkeypatch.setenv("TEST_AZURE_ENDPOINT", server.base_url)
        monkeypatch.setenv("AZ_TENANT", APP.tenant_id)
        monkeypatch.setenv("AZ_CLIENT", APP.client_id)
        monkeypatch.setenv("AZ_SECRET", SECRET)
        monkeypatch.setenv("AZ_WRONG_SECRET", "not-the-secret")
        yield server


def test_stored_costs_equal_the_cost_management_amounts_over_several_pages(
    tmp_path: Path, azure: AzureCostManagement, warehouse_resource: ClickHouseResource
) -> None:
    customers = write_customers(tmp_path / "c.yaml", {"contoso": entry("contoso")})

    [result] = run_costs(
        AZURE, RESOURCE, customers, ["contoso"], warehouse_resource, START, END
    ).values()

    assert result.success
    lines = [x for x in generate_bills([account("contoso")], START, END, seed=5)]
    expected = billed_by_day_and_service(lines, START, END)
    assert stored_by_day_and_service(warehouse_resource, "contoso", "azure") == expected
    meta = metadata(result)
    assert _amounts(meta["totals"]) == {"EUR": sum(expected.values())}
    assert meta["api_requests"] > 4  # a token, then several pages of two queries
    assert meta["source"] == "azure_cost_management"


def test_a_throttled_query_waits_for_the_quota_and_the_costs_arrive(
    tmp_path: Path, azure: AzureCostManagement, warehouse_resource: ClickHouseResource
) -> None:
    customers = write_customers(tmp_path / "c.yaml", {"contoso": entry("contoso")})
    azure.throttle(1, retry_after=1)

    [result] = run_costs(
        AZURE, RESOURCE, customers, ["contoso"], warehouse_resource, START, END
    ).values()

    assert result.success
    assert azure.pending_throttles == 0  # the 429 was answered, waited out and retried
    assert metadata(result)["api_requests"] == len(azure.requests)  # the retry counts too


def test_a_restated_window_leaves_only_the_new_numbers(
    tmp_path: Path, azure: AzureCostManagement, warehouse_resource: ClickHouseResource
) -> None:
    customers = write_customers(tmp_path / "c.yaml", {"contoso": entry("contoso")})
    run_costs(AZURE, RESOURCE, customers, ["contoso"], warehouse_resource, START, END)
    lines = generate_bills([account("contoso")], START, END, seed=5)
    restated = restate(lines, [account("contoso")], since=END - timedelta(days=4), seed=9)
    azure.set_lines(restated)

    [result] = run_costs(
        AZURE, RESOURCE, customers, ["contoso"], warehouse_resource, START, END
    ).values()

    assert result.success
    expected = billed_by_day_and_service(restated, START, END)
    assert stored_by_day_and_service(warehouse_resource, "contoso", "azure") == expected


def test_a_wrong_client_secret_fails_that_customer_only_and_never_shows_the_secret(
    tmp_path: Path, azure: AzureCostManagement, warehouse_resource: ClickHouseResource
) -> None:
    customers = write_customers(
        tmp_path / "c.yaml",
        {"contoso": entry("contoso", "AZ_WRONG_SECRET"), "fabrikam": entry("fabrikam")},
    )

    results = run_costs(
        AZURE, RESOURCE, customers, ["contoso", "fabrikam"], warehouse_resource, START, END
    )

    assert not results["contoso"].success
    message = failure(results["contoso"])
    assert "Entra ID rejected the credentials of customer 'contoso'" in message
    assert "invalid_client" in message and "not-the-secret" not in message
    assert results["fabrikam"].success
    fabrikam = generate_bills([account("fabrikam")], START, END, seed=6)
    assert stored_by_day_and_service(
        warehouse_resource, "fabrikam", "azure"
    ) == billed_by_day_and_service(fabrikam, START, END)
