"""Generated bills stored as the collectors store them: FOCUS rows through the write path."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime

import pandas as pd
from clickhouse_connect.driver.client import Client

from cost_local.sandbox.bills import GeneratedLine
from cost_pipelines.warehouse.writer import CostWindow, replace_window


def focus_rows(lines: Sequence[GeneratedLine]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ChargePeriodStart": [
                datetime.combine(x.charge_date, datetime.min.time(), UTC) for x in lines
            ],
            "BilledCost": [x.billed_cost for x in lines],
            "EffectiveCost": [x.effective_cost for x in lines],
            "ListCost": [x.list_cost for x in lines],
            "ContractedCost": [x.billed_cost for x in lines],
            "BillingCurrency": [x.currency for x in lines],
            "ServiceName": [x.service_name for x in lines],
            "ServiceCategory": [x.service_category for x in lines],
            "ChargeCategory": [x.charge_category for x in lines],
            "SubAccountId": [x.sub_account_id for x in lines],
            "ResourceId": [x.resource_id for x in lines],
            "RegionId": [x.region for x in lines],
            "SkuId": [x.sku_id for x in lines],
        }
    )


def store_bills(
    client: Client, customer_id: str, lines: Sequence[GeneratedLine], start: date, end: date
) -> None:
    """One window per billing account over [start, end), as one collection would write it."""
    accounts = sorted({(x.provider, x.billing_account_id) for x in lines})
    for provider, account in accounts:
        own = [x for x in lines if x.billing_account_id == account]
        window = CostWindow(customer_id, provider, account, start, end)
        replace_window(client, window, focus_rows(own), source="generated", run_id="test")


def lines_frame(lines: Sequence[GeneratedLine]) -> pd.DataFrame:
    """The lines as pandas sees them, for recomputing expected numbers."""
    return pd.DataFrame(
        {
            "provider": [x.provider for x in lines],
            "service": [x.service_name for x in lines],
            "currency": [x.currency for x in lines],
            "day": [x.charge_date for x in lines],
            "resource": [x.resource_id for x in lines],
            "billed": [x.billed_cost for x in lines],
        }
    )
