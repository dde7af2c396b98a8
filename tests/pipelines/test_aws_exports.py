"""aws_costs from an AWS Data Exports FOCUS export in moto's S3: files made by the test."""

from __future__ import annotations

from collections import Counter
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest

from cost_local.sandbox.aws_exports import daily_rows, focus_rows, write_focus_export
from cost_local.sandbox.bills import GeneratedLine, generate_bills, restate
from cost_pipelines.assets.checks import CONFORMANCE, RECONCILIATION
from cost_pipelines.resources.clickhouse import ClickHouseResource
from tests.pipelines.aws_helpers import (
    ENDPOINT_ENV,
    aws_account,
    aws_entry,
    check_evaluation,
    run_aws_costs,
    stored_sums,
)
from tests.pipelines.rest_helpers import failure as failure_message
from tests.pipelines.rest_helpers import metadata as materialization_metadata
from tests.support.customers import write_customers

pytestmark = pytest.mark.slow

PERIOD, START, END = date(2026, 10, 1), date(2026, 10, 1), date(2026, 10, 15)
EXPORT = {"bucket": "acme-billing", "prefix": "exports/focus", "name": "acme-focus"}


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch, moto: str) -> object:
    monkeypatch.setenv(ENDPOINT_ENV, moto)
    monkeypatch.setenv("EXP_KEY_ID", "AKIAEXPORTEXPORT0003")
    monkeypatch.setenv("EXP_SECRET", "export-secret-value")
    client = boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url=moto,
        aws_access_key_id="AKIAEXPORTEXPORT0003",
        aws_secret_access_key="export-secret-value",
    )
    client.create_bucket(Bucket=EXPORT["bucket"])
    return client


def _stored_lines(warehouse: ClickHouseResource, customer_id: str) -> Counter[tuple]:
    rows = (
        warehouse.get_client()
        .query(
            "SELECT ResourceId, SkuId, ChargeCategory, toString(toDate(ChargePeriodStart)), "
            "BilledCost, Tags['team'] FROM costs_current(customer_id={c:String})",
            parameters={"c": customer_id},
        )
        .result_rows
    )
    return Counter((r[0], r[1], r[2], r[3], Decimal(r[4]), r[5]) for r in rows)


def _stored_day(row: dict[str, Any]) -> str:
    """The day a row is stored on: a correction of an earlier billing period on its first day."""
    day, period = row["ChargePeriodStart"][:10], row["BillingPeriodStart"][:10]
    return period if row["ChargeClass"] == "Correction" and day < period else day


def _in_window(lines: list[GeneratedLine]) -> list[dict[str, Any]]:
    """The rows' days in the window: monthly fees in their daily shares."""
    rows = daily_rows(focus_rows(lines))
    return [r for r in rows if START.isoformat() <= _stored_day(r) < END.isoformat()]


def _expected_lines(lines: list[GeneratedLine]) -> Counter[tuple]:
    return Counter(
        (
            row["ResourceId"] or "",
            row["SkuId"] or "",
            row["ChargeCategory"],
            _stored_day(row),
            row["BilledCost"],
            row["Tags"].get("team", ""),
        )
        for row in _in_window(lines)
    )


def _ledger(lines: list[GeneratedLine]) -> dict[tuple[str, str, str, str], Decimal | None]:
    """What the export's FOCUS rows say, per day, service, charge category and cost column."""
    sums: dict[tuple[str, str, str, str], Decimal | None] = {}
    for row in _in_window(lines):
        for column in ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost"):
            key = (_stored_day(row), row["ServiceName"], row["ChargeCategory"], column)
            sums[key] = (sums.get(key) or Decimal(0)) + row[column]
    return sums


def test_export_lines_load_at_resource_level_and_a_redelivery_replaces_them(
    tmp_path: Path, s3: object, warehouse_resource: ClickHouseResource
) -> None:
    entry = aws_entry("exp", "EXP", export=EXPORT)
    customers = write_customers(tmp_path / "c.yaml", {"exp": entry})
    account = aws_account("exp")
    first = generate_bills([account], PERIOD, date(2026, 10, 20), seed=5)
    write_focus_export(s3, billing_period=PERIOD, lines=first, fmt="parquet", **EXPORT)

    result = run_aws_costs(customers, "exp", warehouse_resource, START, END)

    assert result.success
    assert sum(_expected_lines(first).values()) > 500  # 14 days of resource-level lines
    assert _stored_lines(warehouse_resource, "exp") == _expected_lines(first)
    assert materialization_metadata(result)["source"] == "aws_data_exports_focus"

    # AWS re-delivers the month (restated, some lines gone) as CSV.gz with a new manifest; the
    # first delivery's files stay in the bucket but the manifest no longer lists them.
    second = restate(first, [account], since=date(2026, 10, 8), seed=2)
    write_focus_export(s3, billing_period=PERIOD, lines=second, fmt="csv.gz", **EXPORT)

    assert run_aws_costs(customers, "exp", warehouse_resource, START, END).success

    stored = _stored_lines(warehouse_resource, "exp")
    assert stored == _expected_lines(second)
    assert stored != _expected_lines(first)


def test_an_export_without_any_manifest_fails_naming_where_it_looked(
    tmp_path: Path, s3: object, warehouse_resource: ClickHouseResource
) -> None:
    customers = write_customers(
        tmp_path / "c.yaml", {"noexp": aws_entry("noexp", "EXP", export=EXPORT)}
    )

    result = run_aws_costs(customers, "noexp", warehouse_resource, START, END)

    assert not result.success
    assert (
        "no Manifest.json under s3://acme-billing/exports/focus/acme-focus/metadata/"
        "BILLING_PERIOD=2026-10/" in failure_message(result)
    )


def test_a_csv_export_with_empty_cells_loads_every_focus_column_as_aws_wrote_it(
    tmp_path: Path, s3: object, warehouse_resource: ClickHouseResource
) -> None:
    customers = write_customers(
        tmp_path / "c.yaml", {"csv": aws_entry("csv", "EXP", export=EXPORT)}
    )
    lines = generate_bills([aws_account("csv")], PERIOD, date(2026, 10, 20), seed=5)
    write_focus_export(s3, billing_period=PERIOD, lines=lines, fmt="csv.gz", **EXPORT)

    result = run_aws_costs(customers, "csv", warehouse_resource, START, END)

    assert result.success
    ledger = _ledger(lines)
    assert {category for _, _, category, _ in ledger} == {"Usage", "Purchase", "Credit", "Tax"}
    assert stored_sums(warehouse_resource, "csv") == ledger
    client = warehouse_resource.get_client()
    # Monthly fees are on every day of the window, in shares marked with the fee's whole month.
    fee_days, months = client.query(
        "SELECT uniqExact(toDate(ChargePeriodStart)), groupUniqArray(x_SpreadPeriodStart) "
        "FROM costs_current(customer_id={c:String}) WHERE ChargeCategory = 'Purchase'",
        parameters={"c": "csv"},
    ).result_rows[0]
    assert fee_days == (END - START).days
    assert [m.date() for m in months] == [PERIOD]
    [(tax_rows, tax_quantities)] = client.query(
        "SELECT count(), countIf(PricingQuantity IS NOT NULL) "
        "FROM costs_current(customer_id={c:String}) WHERE ChargeCategory = 'Tax'",
        parameters={"c": "csv"},
    ).result_rows
    assert tax_rows == 14 * 3 and tax_quantities == 0  # empty cells are NULL, not rejected
    # Last month's refund, delivered in October as a correction, is on October's first day.
    [correction] = client.query(
        "SELECT toString(toDate(ChargePeriodStart)), ChargeCategory, BilledCost "
        "FROM costs_current(customer_id={c:String}) WHERE ChargeClass = 'Correction'",
        parameters={"c": "csv"},
    ).result_rows
    assert correction[:2] == ("2026-10-01", "Usage") and correction[2] < 0
    metadata = materialization_metadata(result)
    outside = [r for r in focus_rows(lines) if _stored_day(r) >= END.isoformat()]
    assert metadata["lines_outside_window"] == len(outside) > 0
    assert check_evaluation(result, CONFORMANCE).passed
    reconciled = check_evaluation(result, RECONCILIATION)
    assert reconciled.passed
    assert reconciled.description == "this source gives no independent total to reconcile with"
