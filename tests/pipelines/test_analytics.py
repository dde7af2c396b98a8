"""The analyses over stored bills: the demo's spike is an anomaly, a steady weekly pattern is
none, the month-end forecast counts the stored days exactly and brackets the month's real total,
and budgets report the thresholds they reached. Real warehouse, real Dagster materializations;
the expected numbers are recomputed with pandas over the same generated lines."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from dagster import AssetsDefinition, StaticPartitionsDefinition, materialize

from cost_local.sandbox import demo
from cost_local.sandbox.bills import GeneratedLine, generate_bills
from cost_local.sandbox.catalog import PRODUCTS
from cost_pipelines.assets.analytics import build_analytics_assets
from cost_pipelines.resources.clickhouse import ClickHouseResource
from cost_pipelines.resources.customers import CustomersResource
from tests.support.bills import lines_frame, store_bills
from tests.support.customers import write_customers
from tests.support.processes import WarehouseProcess, own_database

TODAY = date(2026, 11, 20)  # the open day: analyses count the days before it as complete
START = TODAY - timedelta(days=140)
SPIKE = TODAY - timedelta(days=3)
MONTH_END = date(2026, 12, 1)


@pytest.fixture(scope="module")
def demo_year() -> list[GeneratedLine]:
    """The demo customer's bills through the month's end, spiking three days before TODAY."""
    accounts = list(demo.accounts().values())
    return generate_bills(accounts, START, MONTH_END, seed=7, spike_on=SPIKE)


@pytest.fixture(scope="module")
def stored(
    warehouse: WarehouseProcess, demo_year: list[GeneratedLine]
) -> Iterator[ClickHouseResource]:
    """The bills up to and including TODAY (its lines so far) stored for `demo`, and a steady
    customer whose costs repeat the same week exactly."""
    with own_database(warehouse, "analytics") as name:
        resource = ClickHouseResource(url=warehouse.url, database=name)
        client = resource.get_client()
        known = [x for x in demo_year if x.charge_date <= TODAY]
        store_bills(client, "demo", known, START, TODAY + timedelta(days=1))
        store_bills(client, "steady", steady_lines(known), START, TODAY + timedelta(days=1))
        yield resource


def steady_lines(lines: list[GeneratedLine]) -> list[GeneratedLine]:
    """The demo's AWS lines with every day costing its weekday's fixed amount."""
    week = [Decimal(a) for a in ("100", "106", "108", "104", "97", "62", "55")]
    first = next(x for x in lines if x.provider == "aws")
    days = sorted({x.charge_date for x in lines})
    return [
        replace(first, charge_date=d, billed_cost=week[d.weekday()], resource_id="r-1")
        for d in days
    ]


def run(stored: ClickHouseResource, customer: str, names: set[str], tmp: Path, **file: Any) -> Any:
    customers = write_customers(tmp / "customers.yaml", {customer: {"providers": {}, **file}})
    assets: list[AssetsDefinition] = [
        a
        for a in build_analytics_assets(StaticPartitionsDefinition(["demo", "steady"]))
        if a.key.to_user_string() in names
    ]
    config = {"config": {"today": TODAY.isoformat()}}
    result = materialize(
        assets,
        partition_key=customer,
        resources={"warehouse": stored, "customers": CustomersResource(path=str(customers))},
        run_config={"ops": {name: config for name in names}},
    )
    assert result.success
    return result


def latest(stored: ClickHouseResource, table: str, asset: str, customer: str) -> pd.DataFrame:
    sql = """
    SELECT * FROM {table:Identifier}
    WHERE customer_id = {customer:String}
      AND run_id = (SELECT argMax(run_id, computed_at) FROM analytics_runs
                    WHERE customer_id = {customer:String} AND asset = {asset:String})
    """
    params = {"table": table, "customer": customer, "asset": asset}
    rows = list(stored.get_client().query(sql, parameters=params).named_results())
    return pd.DataFrame(rows, columns=None if rows else ["provider", "day"])


def costliest_service(provider: str) -> str:
    product = max(
        PRODUCTS[provider], key=lambda p: p.list_unit_price * Decimal(str(p.daily_quantity))
    )
    return product.service_name


def test_the_demos_spike_is_an_anomaly_of_each_providers_costliest_service_on_its_day(
    stored: ClickHouseResource, demo_year: list[GeneratedLine], tmp_path: Path
) -> None:
    result = run(stored, "demo", {"cost_anomalies"}, tmp_path)
    found = latest(stored, "cost_anomalies", "cost_anomalies", "demo")
    frame = lines_frame(demo_year)
    for provider in ("aws", "azure", "gcp", "vultr"):
        service = costliest_service(provider)
        [row] = found[(found.provider == provider) & (found.ServiceName == service)].itertuples()
        assert row.day == SPIKE
        day = frame[
            (frame.provider == provider) & (frame.service == service) & (frame.day == SPIKE)
        ]
        assert Decimal(row.actual) == sum(day.billed, Decimal(0))
        assert Decimal(row.actual) > Decimal(row.upper) > Decimal(row.expected)
        by_resource = day.groupby("resource")["billed"].sum()
        top = sorted(by_resource.items(), key=lambda item: (-item[1], item[0]))[:5]
        assert [(t["resource_id"], t["amount"]) for t in row.top_resources] == top
    metadata = result.asset_materializations_for_node("cost_anomalies")[0].metadata
    assert str(SPIKE) in metadata["top_anomalies"].value


def test_costs_that_repeat_a_weekly_pattern_give_no_anomaly(
    stored: ClickHouseResource, tmp_path: Path
) -> None:
    run(stored, "steady", {"cost_anomalies"}, tmp_path)
    assert latest(stored, "cost_anomalies", "cost_anomalies", "steady").empty


def test_the_forecast_counts_the_stored_days_exactly_and_brackets_the_months_total(
    stored: ClickHouseResource, demo_year: list[GeneratedLine], tmp_path: Path
) -> None:
    run(stored, "demo", {"cost_forecast"}, tmp_path)
    found = latest(stored, "cost_forecasts", "cost_forecast", "demo")
    frame = lines_frame(demo_year)
    month = frame[frame.day >= TODAY.replace(day=1)]
    assert sorted(zip(found.provider, found.currency, strict=True)) == sorted(
        set(zip(month.provider, month.currency, strict=True))
    )
    for row in found.itertuples():
        own = month[(month.provider == row.provider) & (month.currency == row.currency)]
        assert Decimal(row.actual_to_date) == sum(own[own.day < TODAY].billed, Decimal(0))
        assert row.days_complete == TODAY.day - 1 and row.days_in_month == 30
        total = sum(own.billed, Decimal(0))
        assert Decimal(row.lower) <= total <= Decimal(row.upper), row.provider
        assert abs(Decimal(row.forecast) - total) / total < Decimal("0.05"), row.provider


def test_budget_status_reports_the_thresholds_reached_by_cost_and_forecast(
    stored: ClickHouseResource, demo_year: list[GeneratedLine], tmp_path: Path
) -> None:
    frame = lines_frame(demo_year)
    month = frame[(frame.day >= TODAY.replace(day=1)) & (frame.day <= TODAY)]
    usd = sum(month[month.currency == "USD"].billed, Decimal(0))
    aws = sum(month[month.provider == "aws"].billed, Decimal(0))
    budgets = [
        {"name": "usd-total", "amount": str(usd), "currency": "USD"},  # reached today: 100%
        {"amount": str(aws * 3), "currency": "USD", "provider": "aws", "thresholds": [30, 90]},
    ]
    result = run(stored, "demo", {"cost_forecast", "budget_status"}, tmp_path, budgets=budgets)
    found = latest(stored, "budget_status", "budget_status", "demo").set_index("budget")
    total = found.loc["usd-total"]
    assert Decimal(total.actual) == usd
    assert list(total.crossed_actual) == [50, 80, 100]
    assert list(total.crossed_forecast) == [50, 80, 100]
    forecasts = latest(stored, "cost_forecasts", "cost_forecast", "demo")
    aws_forecast = Decimal(forecasts[forecasts.provider == "aws"].forecast.iloc[0])
    per_aws = found.loc["aws-USD"]
    assert Decimal(per_aws.actual) == aws and Decimal(per_aws.forecast) == aws_forecast
    assert list(per_aws.crossed_actual) == [30]
    assert list(per_aws.crossed_forecast) == [30] + (
        [90] if aws_forecast * 100 >= aws * 270 else []
    )
    metadata = result.asset_materializations_for_node("budget_status")[0].metadata
    assert "usd-total" in metadata["forecast_vs_budget"].value
