"""What a provider materialization shows at a glance in the Dagster UI: the window's top services
and its day-by-day totals as markdown, and a float per currency so the UI plots the totals
across materializations. Display only: the exact totals stay in the `totals` JSON entry."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from clickhouse_connect.driver.client import Client
from dagster import MetadataValue

from cost_pipelines.assets.checks import WrittenWindow

TOP_SERVICES = 5
DAYS_SHOWN = 31  # the newest days of the window
_SERVICES_SQL = """
SELECT BillingCurrency, ServiceName, sum(BilledCost) AS amount
FROM costs_current(customer_id = {customer_id:String})
WHERE provider = {provider:String} AND BillingAccountId IN {accounts:Array(String)}
  AND ChargePeriodStart >= {start:DateTime('UTC')} AND ChargePeriodStart < {end:DateTime('UTC')}
GROUP BY BillingCurrency, ServiceName
ORDER BY BillingCurrency, amount DESC, ServiceName
LIMIT {top:UInt32} BY BillingCurrency
"""
_DAYS_SQL = """
SELECT toDate(ChargePeriodStart) AS day, BillingCurrency, sum(BilledCost)
FROM costs_current(customer_id = {customer_id:String})
WHERE provider = {provider:String} AND BillingAccountId IN {accounts:Array(String)}
  AND ChargePeriodStart >= {start:DateTime('UTC')} AND ChargePeriodStart < {end:DateTime('UTC')}
GROUP BY day, BillingCurrency
ORDER BY day DESC, BillingCurrency
LIMIT {days:UInt32}
"""


def _amount(value: Decimal) -> str:
    return f"{value.normalize():f}" if value else "0"


def window_summary(
    client: Client, written: WrittenWindow, totals: Mapping[str, Decimal]
) -> dict[str, MetadataValue[Any]]:
    """`top_services` and `daily_totals` tables, and `total_<CURRENCY>` floats."""
    params = {**written.parameters(), "top": TOP_SERVICES, "days": DAYS_SHOWN}
    services = client.query(_SERVICES_SQL, parameters=params).result_rows
    days = client.query(_DAYS_SQL, parameters=params).result_rows
    top = ["| currency | service | billed |", "|---|---|---|"]
    top += [f"| {c} | {s} | {_amount(Decimal(a))} |" for c, s, a in services]
    daily = ["| day | currency | billed |", "|---|---|---|"]
    daily += [f"| {d} | {c} | {_amount(Decimal(a))} |" for d, c, a in days]
    metadata: dict[str, MetadataValue[Any]] = {
        "top_services": MetadataValue.md("\n".join(top) if services else "no cost in the window"),
        "daily_totals": MetadataValue.md("\n".join(daily) if days else "no cost in the window"),
    }
    for currency, total in totals.items():
        metadata[f"total_{currency}"] = MetadataValue.float(float(total))
    return metadata
