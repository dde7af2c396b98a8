"""gcp_costs against the local Google Cloud (token endpoint + BigQuery export) and the warehouse."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from cost_local.sandbox.bills import generate_bills, restate
from cost_local.sandbox.catalog import Account, demo_accounts
from cost_local.sandbox.gcp import BigQueryBilling, BillingExport, new_service_account_key
from cost_local.sandbox.gcp_ledger import COLUMNS, by_billing_period, ledger
from cost_pipelines.assets.gcp import GCP
from cost_pipelines.resources.clickhouse import ClickHouseResource
from cost_pipelines.resources.gcp import GcpResource
from tests.pipelines.rest_helpers import amounts as _amounts
from tests.pipelines.rest_helpers import (
    check_results,
    failure,
    metadata,
    run_costs,
    run_scheduled,
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


def expected(
    bigquery: BigQueryBilling, customer_id: str, start: date = START, end: date = END
) -> dict[tuple[str, str, str], dict[str, Decimal | None]]:
    """The sandbox ledger: what FOCUS says each day, service and category holds."""
    own = account(customer_id).billing_account_id
    rows = [r for r in bigquery.visible_rows() if r["billing_account_id"] == own]
    return ledger(rows, start, end)


def by_day_and_service(book: dict[tuple[str, str, str], dict[str, Decimal | None]]) -> dict:
    totals: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for (day, service, _), sums in book.items():
        totals[(day, service)] += sums["BilledCost"] or Decimal(0)
    return {k: v for k, v in totals.items() if v}


def stored(
    warehouse: ClickHouseResource, customer_id: str
) -> dict[tuple[str, str, str], dict[str, Decimal | None]]:
    """Per day, service and charge category: each stored cost column's sum (None: NULL)."""
    sums = ", ".join(f"if(countIf(isNull({c})) > 0, NULL, sum({c}))" for c in COLUMNS)
    rows = (
        warehouse.get_client()
        .query(
            f"SELECT toString(toDate(ChargePeriodStart)), ServiceName, ChargeCategory, {sums} "
            "FROM costs_current(customer_id={c:String}) WHERE provider = 'gcp' "
            "GROUP BY 1, 2, 3",
            parameters={"c": customer_id},
        )
        .result_rows
    )
    return {
        (day, service, category): {
            c: None if v is None else Decimal(v) for c, v in zip(COLUMNS, values, strict=True)
        }
        for day, service, category, *values in rows
    }


def exact(book: dict[tuple[str, str, str], dict[str, Decimal | None]]) -> dict:
    """Amounts compared as numbers (Decimal('1.50') == Decimal('1.5'), keys kept exact)."""
    return {
        key: {c: None if v is None else v.normalize() for c, v in sums.items()}
        for key, sums in book.items()
    }


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
    book = expected(bigquery, "initech")
    # Every day, service, charge category and cost column to the last decimal.
    assert exact(stored(warehouse_resource, "initech")) == exact(book)
    assert {category for _, _, category in book} == {"Usage", "Purchase", "Tax", "Credit"}
    wanted = by_day_and_service(book)
    assert stored_by_day_and_service(warehouse_resource, "initech", "gcp") == wanted
    assert ("2026-10-03", "Tax") in wanted
    meta = metadata(result)
    # a token, jobs.query and getQueryResults pages of the lines, the totals query
    assert meta["api_requests"] > 3
    assert _amounts(meta["totals"]) == {"USD": sum(wanted.values())}
    checks = check_results(result)
    assert checks["focus_conformance"].passed, checks["focus_conformance"].description
    assert checks["reconciles_with_provider"].passed
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
    wanted = by_day_and_service(expected(bigquery, "initech"))
    found = stored_by_day_and_service(warehouse_resource, "initech", "gcp")
    assert {day for day, _ in found} == {day for day, _ in wanted}  # the first day included
    assert found == wanted


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
    assert exact(stored(warehouse_resource, "initech")) == exact(expected(bigquery, "initech"))


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
    assert exact(stored(warehouse_resource, "hooli")) == exact(expected(bigquery, "hooli"))


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


def test_invoice_month_is_the_billing_period_at_the_pacific_month_boundary(
    tmp_path: Path, bigquery: BigQueryBilling, warehouse_resource: ClickHouseResource
) -> None:
    start, end = date(2026, 10, 29), date(2026, 11, 3)
    bigquery.set_lines(generate_bills([account("initech")], start, end, seed=5))
    customers = write_customers(tmp_path / "c.yaml", {"initech": entry("initech")})

    [result] = run_costs(
        GCP, RESOURCE, customers, ["initech"], warehouse_resource, start, end
    ).values()

    assert result.success
    rows = (
        warehouse_resource.get_client()
        .query(
            "SELECT BillingPeriodStart, BillingPeriodEnd, sum(BilledCost), "
            "countIf(toDate(ChargePeriodStart) = '2026-10-31') "
            "FROM costs_current(customer_id={c:String}) GROUP BY 1, 2 ORDER BY 1",
            parameters={"c": "initech"},
        )
        .result_rows
    )
    own = [r for r in bigquery.visible_rows() if start <= r["usage_start_time"].date() < end]
    invoices = by_billing_period(own)
    october = datetime(2026, 10, 1, 7, tzinfo=UTC)  # 00:00 Pacific (PDT)
    november = datetime(2026, 11, 1, 7, tzinfo=UTC)
    assert [(s.replace(tzinfo=UTC), e.replace(tzinfo=UTC)) for s, e, _, _ in rows] == [
        (october, november),
        (november, datetime(2026, 12, 1, 8, tzinfo=UTC)),  # PST from 1 November
    ]
    assert {s.replace(tzinfo=UTC): Decimal(t) for s, _, t, _ in rows} == invoices
    # 31 October's late usage rolled over to the November invoice.
    assert rows[1][3] > 0
    late = (
        warehouse_resource.get_client()
        .query(
            "SELECT count() FROM costs_current(customer_id={c:String}) "
            "WHERE toDate(ChargePeriodStart) = '2026-10-31' "
            "AND BillingPeriodStart = toDateTime('2026-11-01 07:00:00', 'UTC')",
            parameters={"c": "initech"},
        )
        .result_rows[0][0]
    )
    assert late == rows[1][3]
    assert check_results(result)["focus_conformance"].passed


def test_a_late_correction_is_collected_on_the_next_run_and_quiet_runs_scan_little(
    tmp_path: Path, bigquery: BigQueryBilling, warehouse_resource: ClickHouseResource
) -> None:
    today = datetime.now(UTC).date()
    start = today - timedelta(days=30)
    bigquery.set_lines(generate_bills([account("initech")], start, today + timedelta(days=1)))
    customers = write_customers(tmp_path / "c.yaml", {"initech": entry("initech")})
    resource = GcpResource(retry_base_delay_s=0.01, warehouse=warehouse_resource)

    first = run_scheduled(GCP, resource, customers, "initech", warehouse_resource)
    first_jobs = list(bigquery.jobs_log)
    quiet = run_scheduled(GCP, resource, customers, "initech", warehouse_resource)
    quiet_jobs = bigquery.jobs_log[len(first_jobs) :]
    # Weeks later Google corrects a usage day 20 days back: new rows dated to it, exported now.
    corrected = today - timedelta(days=20)
    fix = bigquery.correct(account("initech").billing_account_id, corrected, datetime.now(UTC))
    second = run_scheduled(GCP, resource, customers, "initech", warehouse_resource)
    second_jobs = bigquery.jobs_log[len(first_jobs) + len(quiet_jobs) :]

    assert first.success and quiet.success and second.success
    # The first collection reads the whole horizon; a quiet one only the recent days.
    assert metadata(first)["window_start"] == (today - timedelta(days=92)).isoformat()
    assert metadata(quiet)["window_start"] == (today - timedelta(days=5)).isoformat()
    assert metadata(second)["window_start"] == corrected.isoformat()
    assert exact(stored(warehouse_resource, "initech")) == exact(
        expected(bigquery, "initech", start, today + timedelta(days=1))
    )
    assert fix[0]["cost"] < 0
    correction = (
        warehouse_resource.get_client()
        .query(
            "SELECT ChargeCategory, ChargeClass, x_ChargeType, sum(BilledCost) "
            "FROM costs_current(customer_id={c:String}) WHERE ChargeClass = 'Correction' "
            "GROUP BY 1, 2, 3",
            parameters={"c": "initech"},
        )
        .result_rows
    )
    assert [(c, k, t) for c, k, t, _ in correction] == [("Adjustment", "Correction", "adjustment")]
    assert all(check_results(r)["reconciles_with_provider"].passed for r in (first, second))
    # Requests: a token and 3 jobs (restated days, lines, totals) plus result pages.
    assert len(first_jobs) == 2 and len(quiet_jobs) == 3 and len(second_jobs) == 3
    assert metadata(quiet)["api_requests"] == 1 + 3 + pages(quiet_jobs)
    # Bytes: the watermark query scans two days of partitions, a quiet run far less than the
    # first one, the correction run the 21 days since the corrected day.
    restated_scan = quiet_jobs[0].bytes_processed
    assert 0 < restated_scan < sum(j.bytes_processed for j in quiet_jobs[1:])
    total = {
        name: sum(j.bytes_processed for j in jobs)
        for name, jobs in (("first", first_jobs), ("quiet", quiet_jobs), ("second", second_jobs))
    }
    assert total["quiet"] < total["second"] < total["first"]


def pages(jobs: list) -> int:
    """getQueryResults requests after each jobs.query (the page size is 30 here)."""
    return sum(max(0, -(-j.rows // 30) - 1) for j in jobs)


def test_a_total_that_differs_from_bigquerys_sum_fails_reconciliation(
    tmp_path: Path, bigquery: BigQueryBilling, warehouse_resource: ClickHouseResource
) -> None:
    customers = write_customers(tmp_path / "c.yaml", {"initech": entry("initech")})
    bigquery.net_skew = Decimal("0.000001")

    [result] = run_costs(
        GCP, RESOURCE, customers, ["initech"], warehouse_resource, START, END
    ).values()

    check = check_results(result)["reconciles_with_provider"]
    assert not check.passed
    billing_account = account("initech").billing_account_id
    assert f"initech/gcp account {billing_account} 2026-10-01" in str(check.description)
    assert "(difference -0.000001)" in str(check.description)


def test_a_day_the_lines_lost_fails_reconciliation(
    tmp_path: Path, bigquery: BigQueryBilling, warehouse_resource: ClickHouseResource
) -> None:
    customers = write_customers(tmp_path / "c.yaml", {"initech": entry("initech")})
    bigquery.lose_day = date(2026, 10, 4)

    [result] = run_costs(
        GCP, RESOURCE, customers, ["initech"], warehouse_resource, START, END
    ).values()

    check = check_results(result)["reconciles_with_provider"]
    assert not check.passed
    assert "2026-10-04: stored 0 USD" in str(check.description)
