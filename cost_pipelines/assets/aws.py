"""AWS costs per customer: Cost Explorer daily by linked account, service and usage type, or the
customer's Data Exports FOCUS export in S3 when one is configured.

Cost Explorer allows two GroupBy dimensions and we need three (linked account, service, usage
type). Mixing two queries (account x service, service x usage type) cannot be joined exactly, so we
ask once for the linked accounts that had costs in the window (GroupBy LINKED_ACCOUNT, which also
names them), then once per account, filtered to it, grouped by SERVICE and USAGE_TYPE. That is
1 + accounts requests (plus further pages) per run, at $0.01 each, every 6 hours by default.

Metric mapping to FOCUS 1.2 (what each column means in AWS's own FOCUS export):
  BilledCost     <- UnblendedCost      what the invoice charges for the line
  EffectiveCost  <- NetAmortizedCost   upfront fees spread over the term, after discounts
  ContractedCost <- NetUnblendedCost   after negotiated (private pricing, EDP) discounts
  ListCost       <- UnblendedCost      Cost Explorer has no public on-demand price metric; the
                                       Data Exports path carries the real ListCost
  PricingQuantity/Unit <- UsageQuantity
ChargeCategory: "Tax" for the Tax service, "Credit" for negative lines, otherwise "Usage".
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pandas as pd

from cost_pipelines.assets.aws_exports import fetch_focus_export
from cost_pipelines.assets.collection import DateWindow, Fetched, ProviderSpec
from cost_pipelines.customers import AwsConfig
from cost_pipelines.focus.service_categories import service_category
from cost_pipelines.resources.aws import AwsResource, AwsSession
from cost_pipelines.resources.retry import Paginator

SOURCE_COST_EXPLORER = "aws_cost_explorer"
METRICS = ("UnblendedCost", "NetUnblendedCost", "NetAmortizedCost", "UsageQuantity")
FOCUS_FROM_METRIC = {
    "BilledCost": "UnblendedCost",
    "EffectiveCost": "NetAmortizedCost",
    "ContractedCost": "NetUnblendedCost",
    "ListCost": "UnblendedCost",
}
_ZERO = Decimal(0)


def account_discovery_request(window: DateWindow) -> dict[str, Any]:
    """Which linked accounts had costs in the window (and their names)."""
    return {
        "TimePeriod": {"Start": window.start.isoformat(), "End": window.end.isoformat()},
        "Granularity": "DAILY",
        "Metrics": ["UnblendedCost"],
        "GroupBy": [{"Type": "DIMENSION", "Key": "LINKED_ACCOUNT"}],
    }


def account_costs_request(window: DateWindow, account_id: str) -> dict[str, Any]:
    """One linked account's daily costs by service and usage type."""
    return {
        "TimePeriod": {"Start": window.start.isoformat(), "End": window.end.isoformat()},
        "Granularity": "DAILY",
        "Metrics": list(METRICS),
        "GroupBy": [
            {"Type": "DIMENSION", "Key": "SERVICE"},
            {"Type": "DIMENSION", "Key": "USAGE_TYPE"},
        ],
        "Filter": {"Dimensions": {"Key": "LINKED_ACCOUNT", "Values": [account_id]}},
    }


def _pages(session: AwsSession, ce: Any, request: dict[str, Any], what: str) -> Paginator[Any]:
    def fetch(token: str | None) -> Any:
        params = {**request, "NextPageToken": token} if token else request
        return session.call(ce.get_cost_and_usage, what, **params)

    return Paginator(fetch, lambda page: page.get("NextPageToken"))


def _amount(metrics: dict[str, Any], name: str) -> Decimal:
    # Amounts arrive as strings; Decimal keeps every digit Cost Explorer sent.
    value = metrics.get(name, {}).get("Amount")
    return Decimal(value) if value not in (None, "") else _ZERO


def _category(service: str, billed: Decimal) -> str:
    if service == "Tax":
        return "Tax"
    return "Credit" if billed < 0 else "Usage"


def _account_rows(
    pages: Paginator[Any], billing_account: str, account: str, name: str
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for page in pages:
        for period in page.get("ResultsByTime", []):
            day = period["TimePeriod"]["Start"]
            estimated = bool(period.get("Estimated", False))
            for group in period.get("Groups", []):
                service, usage_type = [*group["Keys"], "", ""][:2]
                metrics = group.get("Metrics", {})
                row: dict[str, Any] = {
                    column: _amount(metrics, metric) for column, metric in FOCUS_FROM_METRIC.items()
                }
                row.update(
                    ChargePeriodStart=day,
                    BillingAccountId=billing_account,
                    SubAccountId=account,
                    SubAccountName=name,
                    ProviderName="AWS",
                    ServiceName=service,
                    ServiceCategory=service_category("aws", service),
                    ChargeDescription=usage_type,
                    ChargeCategory=_category(service, row["BilledCost"]),
                    BillingCurrency=metrics.get("UnblendedCost", {}).get("Unit", "USD"),
                    PricingQuantity=_amount(metrics, "UsageQuantity"),
                    PricingUnit=metrics.get("UsageQuantity", {}).get("Unit", ""),
                    x_Estimated=estimated,
                )
                rows.append(row)
    return rows


def fetch_cost_explorer(window: DateWindow, config: AwsConfig, session: AwsSession) -> Fetched:
    """Every page of every query; accounts in id order so the request sequence is stable."""
    ce = session.client("ce", region="us-east-1")
    discovery = _pages(session, ce, account_discovery_request(window), "ce:GetCostAndUsage")
    names: dict[str, str] = {}
    for page in discovery:
        for attribute in page.get("DimensionValueAttributes", []):
            names[attribute["Value"]] = attribute.get("Attributes", {}).get("description", "")
        for period in page.get("ResultsByTime", []):
            for group in period.get("Groups", []):
                names.setdefault(group["Keys"][0], "")
    requests = discovery.requests
    rows: list[dict[str, Any]] = []
    for account in sorted(names):
        pages = _pages(
            session, ce, account_costs_request(window, account), f"ce:GetCostAndUsage {account}"
        )
        rows.extend(_account_rows(pages, config.billing_account_id, account, names[account]))
        requests += pages.requests
    frame = pd.DataFrame(rows, columns=None if rows else ["BillingAccountId"])
    return Fetched(frame, requests, SOURCE_COST_EXPLORER)


def fetch_aws(window: DateWindow, config: AwsConfig, session: AwsSession) -> Fetched:
    """The export when the customer configured one (resource-level lines), else Cost Explorer."""
    if config.export is not None:
        return fetch_focus_export(window, config, session)
    return fetch_cost_explorer(window, config, session)


AWS = ProviderSpec(
    provider="aws",
    title="AWS",
    description=(
        "Daily AWS costs of one customer in FOCUS shape: Cost Explorer by linked account, "
        "service and usage type, or the customer's Data Exports FOCUS export when configured. "
        "Re-collects a trailing window (14 days, month to date, the previous month until the "
        "15th) so AWS's restatements replace older numbers."
    ),
    kinds=frozenset({"aws"}),
    fetch=fetch_aws,
    resource=AwsResource(),
)
