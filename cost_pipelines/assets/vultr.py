"""Vultr costs per customer from billing invoices (closed months) and pending charges (the month
so far, marked x_Estimated). Vultr itemises per resource and month, so each item becomes one
line dated at its start_date; an item belongs to a window when its start_date falls in it.
Invoices come newest first: paging stops at the first invoice older than the window.
ChargeCategory: "Credit" for negative items, otherwise "Usage". Vultr bills in USD.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pandas as pd

from cost_pipelines.assets.collection import DateWindow, Fetched, ProviderSpec
from cost_pipelines.customers import VultrConfig
from cost_pipelines.focus.service_categories import service_category
from cost_pipelines.resources.rest import ApiRefused
from cost_pipelines.resources.vultr import VultrResource, VultrSession

SOURCE = "vultr_billing"


def _day(text: str) -> date:
    return datetime.fromisoformat(text).date()


def invoice_month(invoice: dict[str, Any]) -> DateWindow:
    """An invoice issued on the 1st covers the month before it."""
    last_day = _day(invoice["date"]) - timedelta(days=1)
    first = last_day.replace(day=1)
    return DateWindow(first, (first + timedelta(days=32)).replace(day=1))


def focus_line(account: str, item: dict[str, Any], estimated: bool) -> dict[str, Any]:
    total = Decimal(item["total"])
    return {
        "ChargePeriodStart": _day(item["start_date"]).isoformat(),
        "ChargePeriodEnd": item["end_date"],
        "BillingAccountId": account,
        "SubAccountId": account,
        "ProviderName": "Vultr",
        "ServiceName": item.get("product", ""),
        "ServiceCategory": service_category("vultr", item.get("product", "")),
        "ChargeCategory": "Credit" if total < 0 else "Usage",
        "ChargeDescription": item.get("description", ""),
        "ResourceName": item.get("description", ""),
        "BilledCost": total,
        "EffectiveCost": total,
        "ListCost": Decimal(item.get("units", 0)) * Decimal(item.get("unit_price", 0)),
        "PricingQuantity": Decimal(item.get("units", 0)),
        "PricingUnit": item.get("unit_type", ""),
        "BillingCurrency": "USD",
        "x_Estimated": estimated,
    }


def _items(session: VultrSession, window: DateWindow) -> list[tuple[dict[str, Any], bool]]:
    found: list[tuple[dict[str, Any], bool]] = []
    for invoices in session.pages("/v2/billing/invoices", "billing_invoices"):
        for invoice in invoices:
            month = invoice_month(invoice)
            if month.end <= window.start:
                return found  # newest first: everything further is older still
            if month.start < window.end:
                path = f"/v2/billing/invoices/{invoice['id']}/items"
                for items in session.pages(path, "invoice_items"):
                    found.extend((item, False) for item in items)
    return found


def fetch_vultr(window: DateWindow, config: VultrConfig, session: VultrSession) -> Fetched:
    """Invoice items and pending charges whose period starts in the window."""
    if len(config.billing_account_ids) != 1:
        raise ApiRefused("a Vultr API key reaches one account: give exactly one billing account id")
    account = config.billing_account_ids[0]
    items = _items(session, window)
    items.extend((item, True) for item in session.pending_charges())
    lines = [
        focus_line(account, item, estimated)
        for item, estimated in items
        if window.start <= _day(item["start_date"]) < window.end
    ]
    frame = pd.DataFrame(lines, columns=None if lines else ["BillingAccountId"])
    return Fetched(frame, session.requests, SOURCE)


VULTR = ProviderSpec(
    provider="vultr",
    title="Vultr",
    description=(
        "Daily Vultr costs of one customer in FOCUS shape from invoices and pending charges; "
        "re-collects the current and the previous invoice period. Fails with 'not configured' "
        "for customers without providers.vultr."
    ),
    kinds=frozenset({"vultr"}),
    fetch=fetch_vultr,
    resource=VultrResource(),
)
