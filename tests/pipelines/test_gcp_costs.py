"""gcp_costs against the local Google Cloud (token endpoint + BigQuery export) and the warehouse."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from cost_local.sandbox.bills import generate_bills, restate
from cost_local.sandbox.catalog import Account, demo_accounts
from cost_local.sandbox.gcp import BigQueryBilling, BillingExport, new_service_account_key
from cost_pipelines.assets.gcp import GCP
from cost_pipelines.resources.clickhouse import ClickHouseResource
from cost_pipelines.resources.gcp import GcpResource
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
START, END = date(2026, 10, 1), date(2026, 10, 12)
RESOURCE = GcpResource(retry_base_delay_s=0.01)
READER = "collector@initech-billing.iam.gserviceaccount.com"


def account(customer_id: str) -> Account:
    return next(a for a in demo_accounts(customer_id) if a.provider == "gcp")


def export(customer_id: str) -> BillingExport:
    return BillingExport("initech-billing", "billing", account(customer_id).billing_account_id)


def entry(customer_id: str, key_env: str = "GCP_KEY_FILE") -> dict[str, Any]:
    return {
        "providers": {
            "gcp": {
                "billing_account_ids": [account(customer_id).billing_account_id],
                "credentials": {"service_account_file": key_env},
                "options": {"dataset": "initech-billing.billing"},
                "endpoint_url_env": "TEST_BIGQUERY_ENDPOINT",
            }
        }
    }


def bills(customer_id: str, seed: int) -> list:
    return generate_bills([account(customer_id)], START, END, seed=seed)


@pytest.fixture
def bigquery(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[BigQueryBilling]:
    good = new_service_account_key(READER, "initech-billing", "")
    stranger = new_service_account_key("x@elsewhere.iam.gserviceaccount.com", "elsewhere", "")
    lines = [*bills("initech", 5), *bills("hooli", 6)]
    # Both exports are readable by the good key only.
    exports = [
        BillingExport(e.project, e.dataset, e.billing_account_id, readers=(READER,))
        for e in (export("initech"), export("hooli"))
    ]
    with BigQueryBilling([good, stranger], exports, lines, page_size=30) as server:
        for name, key in (("good.json", good), ("stranger.json", stranger)):
            key["token_uri"] = f"{server.base_url}/token"
            (tmp_path / name).write_text(json.dumps(key), encoding="utf-8")
        monkeypatch.setenv("TEST_BIGQUERY_ENDPOINT", server.base_url)
        monkeypatch.setenv("GCP_KEY_FILE", str(tmp_path / "good.json"))
        monkeypatch.setenv("GCP_STRANGER_KEY_FILE", str(tmp_path / "stranger.json"))
        yield server


def test_stored_costs_equal_the_export_amounts_credits_and_taxes_included(
    tmp_path: Path, bigquery: BigQueryBilling, warehouse_resource: ClickHouseResource
) -> None:
    customers = write_customers(tmp_path / "c.yaml", {"initech": entry("initech")})

    [result] = run_costs(
        GCP, RESOURCE, customers, ["initech"], warehouse_resource, START, END
    ).values()

    assert result.success
    expected = billed_by_day_and_service(bills("initech", 5), START, END)
    assert stored_by_day_and_service(warehouse_resource, "initech", "gcp") == expected
    assert ("2026-10-03", "Tax") in expected
    meta = metadata(result)
    assert meta["api_requests"] > 3  # a token, jobs.query, then getQueryResults pages
    assert _amounts(meta["totals"]) == {"USD": sum(expected.values())}
    credits = (
        warehouse_resource.get_client()
        .query(
            "SELECT count(), sum(BilledCost) FROM costs_current(customer_id={c:String}) "
            "WHERE ChargeCategory = 'Credit'",
            parameters={"c": "initech"},
        )
        .result_rows[0]
    )
    assert credits[0] > 0 and credits[1] < 0


def test_usage_exported_into_the_previous_days_partition_is_collected(
    tmp_path: Path, bigquery: BigQueryBilling, warehouse_resource: ClickHouseResource
) -> None:
    # Exported 4 h after it starts, a day's usage sits in the previous Pacific day's partition.
    bigquery.export_delay = timedelta(hours=4)
    bigquery.set_lines(bills("initech", 5))
    customers = write_customers(tmp_path / "c.yaml", {"initech": entry("initech")})

    [result] = run_costs(
        GCP, RESOURCE, customers, ["initech"], warehouse_resource, START, END
    ).values()

    assert result.success
    expected = billed_by_day_and_service(bills("initech", 5), START, END)
    stored = stored_by_day_and_service(warehouse_resource, "initech", "gcp")
    assert {day for day, _ in stored} == {day for day, _ in expected}  # the first day included
    assert stored == expected


def test_a_backfilled_export_replaces_the_window(
    tmp_path: Path, bigquery: BigQueryBilling, warehouse_resource: ClickHouseResource
) -> None:
    customers = write_customers(tmp_path / "c.yaml", {"initech": entry("initech")})
    run_costs(GCP, RESOURCE, customers, ["initech"], warehouse_resource, START, END)
    restated = restate(bills("initech", 5), [account("initech")], since=END - timedelta(days=5))
    bigquery.set_lines(restated)

    [result] = run_costs(
        GCP, RESOURCE, customers, ["initech"], warehouse_resource, START, END
    ).values()

    assert result.success
    expected = billed_by_day_and_service(restated, START, END)
    assert stored_by_day_and_service(warehouse_resource, "initech", "gcp") == expected


def test_a_key_without_access_fails_that_customer_and_the_other_one_loads(
    tmp_path: Path, bigquery: BigQueryBilling, warehouse_resource: ClickHouseResource
) -> None:
    customers = write_customers(
        tmp_path / "c.yaml",
        {"initech": entry("initech", "GCP_STRANGER_KEY_FILE"), "hooli": entry("hooli")},
    )

    results = run_costs(
        GCP, RESOURCE, customers, ["initech", "hooli"], warehouse_resource, START, END
    )

    assert not results["initech"].success
    message = failure(results["initech"])
    assert "BigQuery rejected the credentials of customer 'initech'" in message
    assert "accessDenied" in message and "PRIVATE KEY" not in message
    assert results["hooli"].success
    expected = billed_by_day_and_service(bills("hooli", 6), START, END)
    assert stored_by_day_and_service(warehouse_resource, "hooli", "gcp") == expected


def test_a_missing_key_file_is_a_clear_failure(
    tmp_path: Path,
    bigquery: BigQueryBilling,
    warehouse_resource: ClickHouseResource,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GCP_KEY_FILE", str(tmp_path / "nope.json"))
    customers = write_customers(tmp_path / "c.yaml", {"initech": entry("initech")})

    [result] = run_costs(
        GCP, RESOURCE, customers, ["initech"], warehouse_resource, START, END
    ).values()

    assert "cannot read the service-account key file" in failure(result)
