"""Every provider materialization shows its window at a glance: the top services and the
day-by-day totals as markdown tables, and a float per currency the Dagster UI plots."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
from dagster import ConfigurableResource

from cost_pipelines.assets.collection import DateWindow, Fetched
from cost_pipelines.assets.vultr import VULTR
from cost_pipelines.resources.clickhouse import ClickHouseResource
from tests.pipelines.rest_helpers import metadata, run_costs
from tests.support.customers import write_customers

ACCOUNT = "acct-1"
ROWS = pd.DataFrame(
    {
        "BillingAccountId": [ACCOUNT] * 5,
        "ChargePeriodStart": ["2026-10-01", "2026-10-01", "2026-10-02", "2026-10-02", "2026-10-03"],
        "BilledCost": ["10.5", "0.0000001", "11.25", "3", "7"],
        "BillingCurrency": ["USD"] * 4 + ["EUR"],
        "ServiceName": ["Cloud Compute", "Block Storage", "Cloud Compute", "Block Storage", "CDN"],
        "ServiceCategory": ["Compute", "Storage", "Compute", "Storage", "Networking"],
        "ChargeCategory": ["Usage"] * 5,
        "ResourceId": ["vm-1", "disk-1", "vm-1", "disk-1", "cdn-1"],
    }
)


class CannedSessions(ConfigurableResource):  # type: ignore[type-arg]
    @contextmanager
    def session(self, customer_id: str, config: Any) -> Iterator[None]:
        yield None


def test_a_materialization_carries_top_services_daily_totals_and_a_float_per_currency(
    tmp_path: Path, warehouse_resource: ClickHouseResource
) -> None:
    entry = {"billing_account_ids": [ACCOUNT], "credentials": {"api_key": "UNUSED_KEY"}}
    customers = write_customers(tmp_path / "c.yaml", {"acme": {"providers": {"vultr": entry}}})

    def fetch(window: DateWindow, config: Any, session: Any) -> Fetched:
        return Fetched(ROWS, 1, "canned")

    spec = replace(VULTR, fetch=fetch, resource=CannedSessions())
    [result] = run_costs(
        spec,
        CannedSessions(),
        customers,
        ["acme"],
        warehouse_resource,
        date(2026, 10, 1),
        date(2026, 10, 4),
    ).values()
    shown = metadata(result)
    frame = ROWS.assign(amount=ROWS.BilledCost.map(Decimal))
    for (currency, service), amount in frame.groupby(["BillingCurrency", "ServiceName"]).amount:
        line = f"| {currency} | {service} | {sum(amount, Decimal(0)).normalize():f} |"
        assert line in shown["top_services"]
    for (day, currency), amount in frame.groupby(["ChargePeriodStart", "BillingCurrency"]).amount:
        assert (
            f"| {day} | {currency} | {sum(amount, Decimal(0)).normalize():f} |"
            in shown["daily_totals"]
        )
    assert shown["total_USD"] == float(Decimal("24.7500001"))
    assert shown["total_EUR"] == 7.0
