"""Azure costs per customer (Cost Management Query API), daily by resource and service.

The query allows two groupings; we group by ResourceId and ServiceName: the subscription is part
of every resource id, so sub-account, service and resource are all filled. Two queries per
billing account and period, ActualCost (-> BilledCost) and AmortizedCost (-> EffectiveCost),
joined exactly on (day, resource, service, currency). A period is at most 92 days per query.
ChargeCategory: "Credit" for negative lines, otherwise "Usage" (the grouping has no charge type).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pandas as pd

from cost_pipelines.assets.collection import DateWindow, Fetched, ProviderSpec
from cost_pipelines.customers import AzureConfig
from cost_pipelines.focus.service_categories import service_category
from cost_pipelines.resources.azure import AzureResource, AzureSession
from cost_pipelines.resources.rest import ApiRefused

SOURCE = "azure_cost_management"
GROUPING = ("ResourceId", "ServiceName")
MAX_QUERY_DAYS = 92
_Key = tuple[date, str, str, str]  # day, resource id, service, currency


def query_body(period: DateWindow, cost_type: str) -> dict[str, Any]:
    """A daily query over [start, end); Azure's `to` is inclusive, so it ends the day before."""
    last = period.end - timedelta(days=1)
    return {
        "type": cost_type,
        "timeframe": "Custom",
        "timePeriod": {"from": f"{period.start}T00:00:00+00:00", "to": f"{last}T23:59:59+00:00"},
        "dataset": {
            "granularity": "Daily",
            "aggregation": {"totalCost": {"name": "Cost", "function": "Sum"}},
            "grouping": [{"type": "Dimension", "name": name} for name in GROUPING],
        },
    }


def periods(window: DateWindow) -> list[DateWindow]:
    out, start = [], window.start
    while start < window.end:
        end = min(start + timedelta(days=MAX_QUERY_DAYS), window.end)
        out.append(DateWindow(start, end))
        start = end
    return out


def _costs(
    session: AzureSession, scope: str, period: DateWindow, cost_type: str
) -> dict[_Key, Decimal]:
    totals: dict[_Key, Decimal] = defaultdict(Decimal)
    for page in session.query(scope, query_body(period, cost_type)):
        names = [column["name"] for column in page["columns"]]
        try:
            cost, day = names.index("Cost"), names.index("UsageDate")
            resource, service = names.index("ResourceId"), names.index("ServiceName")
            currency = names.index("Currency")
        except ValueError:
            raise ApiRefused(f"Azure Cost Management answered unexpected columns {names}") from None
        for row in page["rows"]:
            usage_date = date(row[day] // 10000, row[day] // 100 % 100, row[day] % 100)
            key = (usage_date, str(row[resource] or ""), str(row[service] or ""), row[currency])
            totals[key] += Decimal(row[cost])
    return totals


def _subscription(resource_id: str) -> str:
    parts = resource_id.split("/")
    return parts[2] if len(parts) > 2 and parts[1].lower() == "subscriptions" else ""


def fetch_azure(window: DateWindow, config: AzureConfig, session: AzureSession) -> Fetched:
    """Every billing account's daily costs in the window, billed and amortized."""
    rows: list[dict[str, Any]] = []
    for account in config.billing_account_ids:
        scope = session.billing_account_scope(account)
        for period in periods(window):
            actual = _costs(session, scope, period, "ActualCost")
            amortized = _costs(session, scope, period, "AmortizedCost")
            for key in sorted(actual.keys() | amortized.keys()):
                day, resource_id, service, currency = key
                billed = actual.get(key, Decimal(0))
                rows.append(
                    {
                        "ChargePeriodStart": day.isoformat(),
                        "BillingAccountId": account,
                        "SubAccountId": _subscription(resource_id),
                        "ProviderName": "Microsoft",
                        "ServiceName": service,
                        "ServiceCategory": service_category("azure", service),
                        "ChargeCategory": "Credit" if billed < 0 else "Usage",
                        "ResourceId": resource_id,
                        "ResourceName": resource_id.rsplit("/", 1)[-1],
                        "BilledCost": billed,
                        "EffectiveCost": amortized.get(key, Decimal(0)),
                        "BillingCurrency": currency,
                    }
                )
    frame = pd.DataFrame(rows, columns=None if rows else ["BillingAccountId"])
    return Fetched(frame, session.requests, SOURCE)


AZURE = ProviderSpec(
    provider="azure",
    title="Azure",
    description=(
        "Daily Azure costs of one customer in FOCUS shape from the Cost Management Query API; "
        "re-collects 5 trailing days (usage lands up to 72 h late) and the previous month until "
        "the 5th. Fails with 'not configured' for customers without providers.azure."
    ),
    kinds=frozenset({"azure"}),
    fetch=fetch_azure,
    resource=AzureResource(),
)
