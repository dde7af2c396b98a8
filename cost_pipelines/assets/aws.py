"""AWS costs per customer: Cost Explorer daily by linked account, service and usage type (and
record type), or the customer's Data Exports FOCUS export in S3 when one is configured.

Requests. Cost Explorer allows two GroupBy dimensions and we need four (linked account, service,
usage type, record type). Joining two-dimensional queries cannot be exact, so:
  1. one query of the window grouped by LINKED_ACCOUNT (all record types): it names the linked
     accounts and is the independent daily total every stored line is reconciled with;
  2. per linked account, filtered to it and to the usage record types (Usage, DiscountedUsage,
     SavingsPlanCoveredUsage, SavingsPlanNegation), grouped by SERVICE and USAGE_TYPE;
  3. per linked account, filtered to it and to every OTHER record type, grouped by SERVICE and
     RECORD_TYPE (fees, credits, refunds, tax, discounts).
The two filters partition the account's records, so on every day of the window 2 + 3 add up to 1
exactly (before the monthly fees are spread, see below). Requests per run:
pages(1) + sum over accounts of pages(2) + pages(3), i.e. 1 + 2 x accounts when nothing pages,
at $0.01 each. (GetDimensionValues could name the accounts in one request but gives no totals,
so the reconciliation would need query 1 anyway.)

Cost columns (FOCUS 1.2), per Cost Explorer's metrics:
  BilledCost     <- UnblendedCost     what the invoice charges for the line; $0 for usage an RI
                                      covers, on-demand for SP-covered usage (netted by its
                                      SavingsPlanNegation in the same usage type)
  EffectiveCost  <- NetAmortizedCost  upfront and recurring commitment fees spread over the usage
                                      they covered, after discounts; on an RI or SP fee line the
                                      unused part of the commitment
  ListCost, ContractedCost            not supplied: Cost Explorer has no list or contracted price
                                      metric (they are stored NULL; the Data Exports path has them)
  PricingQuantity/Unit <- UsageQuantity, for the usage record types only
BillingCurrency is Cost Explorer's Unit: the USD pricing currency, not a non-USD invoice currency.

Names and tags. SubAccountName is the linked account's name (query 1's DimensionValueAttributes
`description`); BillingAccountName is the payer's, which Cost Explorer gives only when the payer
has costs of its own (it is then one of the linked accounts), else empty. Cost Explorer lines
carry no tags: a TAG grouping takes one of the two group-bys, so tags would cost one more query
per linked account and tag key ($0.01 each, and every page) and still could not be joined
exactly to the service/usage-type lines; the Data Exports path carries the FOCUS Tags.

ChargeCategory from the RECORD_TYPE (x_ChargeType keeps it): the usage record types are Usage;
RIFee, Upfront, SavingsPlanRecurringFee, SavingsPlanUpfrontFee, Support and Fee are Purchase; Tax
is Tax; Credit and the EDP, bundled, private-rate and other discounts are Credit; Refund is
Adjustment (FOCUS files a refund under the category of what it refunds, which a Cost Explorer
refund line does not name); an unknown record type is Adjustment.

Monthly fees. Cost Explorer's DAILY granularity dates a monthly recurring fee (RIFee,
SavingsPlanRecurringFee, and Support, which AWS bills per calendar month) on the 1st, or on the
purchase day for a commitment bought mid-month, whose fee covers the rest of that month (AWS
prorates it to the remaining days). Such a line is stored spread over the days of its period,
[the day Cost Explorer dates it, the 1st of the next month): equal shares of every amount
(`spread_daily`: rounded half-even to the stored scale, the last day carrying the remainder),
marked with x_SpreadPeriodStart/End. Only the shares of days before the window end (today + 1) are
stored; every run re-collects the open month, so a closed month holds the fee exactly. Upfront,
SavingsPlanUpfrontFee and Fee are one-time charges of their day and stay on it. So that a window
starting after the 1st still gets the shares of a fee dated earlier in its month, query 3 starts
on the 1st of the window's first month; of its lines before the window only the monthly fees are
kept, and only for their shares inside the window.

Reconciliation. The reference is query 1's daily total per linked-account query (all record
types), independent of the split into 2 and 3. It is transformed the same way the lines are: per
(account, day, currency) the raw amounts of the spread fees are taken off the day Cost Explorer
dated them (when it is in the window) and their stored shares added to their days. The
transformation uses only the fee lines, so a page of query 2 or 3 that goes missing (or a total
query 1 gets wrong) still shows as a difference, while correct data reconciles to the cent.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pandas as pd

from cost_pipelines.assets.aws_exports import fetch_focus_export
from cost_pipelines.assets.collection import DateWindow, Fetched, ProviderSpec
from cost_pipelines.customers import AwsConfig
from cost_pipelines.focus.service_categories import service_category
from cost_pipelines.focus.spread import spread_daily
from cost_pipelines.resources.aws import AwsResource, AwsSession
from cost_pipelines.resources.retry import Paginator

SOURCE_COST_EXPLORER = "aws_cost_explorer"
REFERENCE_SOURCE = "Cost Explorer UnblendedCost by linked account, all record types"
METRICS = ("UnblendedCost", "NetAmortizedCost", "UsageQuantity")
USAGE_RECORD_TYPES = ("Usage", "DiscountedUsage", "SavingsPlanCoveredUsage", "SavingsPlanNegation")
USAGE_FAMILY = "+".join(USAGE_RECORD_TYPES)  # x_ChargeType of the usage query's lines
# Monthly recurring fees, dated by Cost Explorer on the 1st (or the purchase day): spread.
MONTHLY_FEES = ("RIFee", "SavingsPlanRecurringFee", "Support")
_PURCHASES = (
    "RIFee",
    "Upfront",
    "SavingsPlanRecurringFee",
    "SavingsPlanUpfrontFee",
    "Support",
    "Fee",
)
_CREDITS = (
    "Credit",
    "EdpDiscount",
    "Enterprise Discount Program Discount",
    "BundledDiscount",
    "Bundled Discount",
    "PrivateRateDiscount",
    "Private Rate Card Discount",
    "DistributorDiscount",
    "Distributor Discount",
    "SppDiscount",
    "Solution Provider Program Discount",
)
CHARGE_CATEGORY = {
    **dict.fromkeys(_PURCHASES, "Purchase"),
    **dict.fromkeys(_CREDITS, "Credit"),
    "Tax": "Tax",
    "Refund": "Adjustment",
}
_ZERO = Decimal(0)


def _period(window: DateWindow) -> dict[str, str]:
    return {"Start": window.start.isoformat(), "End": window.end.isoformat()}


def account_totals_request(window: DateWindow) -> dict[str, Any]:
    """Which linked accounts had costs in the window, with each one's daily total."""
    return {
        "TimePeriod": _period(window),
        "Granularity": "DAILY",
        "Metrics": ["UnblendedCost"],
        "GroupBy": [{"Type": "DIMENSION", "Key": "LINKED_ACCOUNT"}],
    }


def _usage_filter(account_id: str, usage: bool) -> dict[str, Any]:
    record_types: dict[str, Any] = {
        "Dimensions": {"Key": "RECORD_TYPE", "Values": list(USAGE_RECORD_TYPES)}
    }
    return {
        "And": [
            {"Dimensions": {"Key": "LINKED_ACCOUNT", "Values": [account_id]}},
            record_types if usage else {"Not": record_types},
        ]
    }


def account_request(window: DateWindow, account_id: str, *, usage: bool) -> dict[str, Any]:
    """One linked account's daily lines: the usage record types by service and usage type
    (`usage`), or the other record types (fees, credits, refunds, tax) by service and record
    type. The two filters partition the account's records, so the parts add up to its total."""
    second = "USAGE_TYPE" if usage else "RECORD_TYPE"
    return {
        "TimePeriod": _period(window),
        "Granularity": "DAILY",
        "Metrics": list(METRICS),
        "GroupBy": [
            {"Type": "DIMENSION", "Key": "SERVICE"},
            {"Type": "DIMENSION", "Key": second},
        ],
        "Filter": _usage_filter(account_id, usage=usage),
    }


def charge_category(record_type: str) -> str:
    """The FOCUS ChargeCategory of a Cost Explorer record type outside the usage family."""
    if record_type in CHARGE_CATEGORY:
        return CHARGE_CATEGORY[record_type]
    return "Credit" if "discount" in record_type.lower() else "Adjustment"


def _next_month(day: date) -> date:
    return (day.replace(day=1) + timedelta(days=32)).replace(day=1)


def spread_monthly_fees(
    rows: Iterable[dict[str, Any]], window: DateWindow
) -> tuple[list[dict[str, Any]], dict[tuple[str, date, str], Decimal]]:
    """The rows of the window with every monthly fee spread over its days up to the window end,
    and what that moved per (billing account, day, currency): minus the fee on the day Cost
    Explorer dated it, plus each stored share on its day (to apply to the reference totals).
    Rows dated before the window (query 3 starts on the month's 1st) count only as fees."""
    out: list[dict[str, Any]] = []
    moved: dict[tuple[str, date, str], Decimal] = defaultdict(Decimal)
    for row in rows:
        day = date.fromisoformat(row["ChargePeriodStart"])
        if row["x_ChargeType"] not in MONTHLY_FEES:
            if window.start <= day < window.end:
                out.append(row)
            continue
        account, currency = row["BillingAccountId"], row["BillingCurrency"]
        if window.start <= day < window.end:
            moved[(account, day, currency)] -= row["BilledCost"]
        for share in spread_daily(row, day, _next_month(day)):
            share_day = share.pop("ChargePeriodStart").date()
            share.pop("ChargePeriodEnd")  # one day, the writer's default
            if window.start <= share_day < window.end:
                out.append({**share, "ChargePeriodStart": share_day.isoformat()})
                moved[(account, share_day, currency)] += share["BilledCost"]
    return out, dict(moved)


def _pages(session: AwsSession, ce: Any, request: dict[str, Any], what: str) -> Paginator[Any]:
    def fetch(token: str | None) -> Any:
        params = {**request, "NextPageToken": token} if token else request
        return session.call(ce.get_cost_and_usage, what, **params)

    return Paginator(fetch, lambda page: page.get("NextPageToken"))


def _amount(metrics: dict[str, Any], name: str) -> Decimal:
    """A requested metric's amount. Cost Explorer answers every requested metric of every group
    (amounts as strings; Decimal keeps every digit): one without it is a broken answer, never a
    zero (a KeyError fails the run naming the field, and nothing is written)."""
    value = metrics[name]["Amount"]
    return Decimal(value) if value != "" else _ZERO


def _account_rows(
    pages: Paginator[Any],
    billing_account: tuple[str, str],
    account: str,
    name: str,
    *,
    usage: bool,
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for page in pages:
        # ResultsByTime, Groups and Metrics are always in a grouped answer (empty when there is
        # nothing): reading a missing one as empty would replace the window with nothing.
        for period in page["ResultsByTime"]:
            day = period["TimePeriod"]["Start"]
            estimated = bool(period.get("Estimated", False))
            for group in period["Groups"]:
                service, key = [*group["Keys"], "", ""][:2]
                metrics = group["Metrics"]
                rows.append(
                    {
                        "ChargePeriodStart": day,
                        "BillingAccountId": billing_account[0],
                        "BillingAccountName": billing_account[1],
                        "SubAccountId": account,
                        "SubAccountName": name,
                        "ProviderName": "AWS",
                        "ServiceName": service,
                        "ServiceCategory": service_category("aws", service),
                        "ChargeDescription": key,
                        "ChargeCategory": "Usage" if usage else charge_category(key),
                        "x_ChargeType": USAGE_FAMILY if usage else key,
                        "BilledCost": _amount(metrics, "UnblendedCost"),
                        "EffectiveCost": _amount(metrics, "NetAmortizedCost"),
                        "BillingCurrency": metrics["UnblendedCost"]["Unit"],
                        "PricingQuantity": _amount(metrics, "UsageQuantity") if usage else None,
                        "PricingUnit": metrics["UsageQuantity"]["Unit"] if usage else "",
                        "x_Estimated": estimated,
                    }
                )
    return rows


def _linked_accounts(
    pages: Paginator[Any], billing_account: str
) -> tuple[dict[str, str], dict[tuple[str, date, str], Decimal]]:
    """Linked account names and the payer's daily totals per currency from query 1."""
    names: dict[str, str] = {}
    totals: dict[tuple[str, date, str], Decimal] = defaultdict(Decimal)
    for page in pages:
        for attribute in page.get("DimensionValueAttributes", []):
            names[attribute["Value"]] = attribute.get("Attributes", {}).get("description", "")
        for period in page["ResultsByTime"]:
            day = date.fromisoformat(period["TimePeriod"]["Start"])
            for group in period["Groups"]:
                names.setdefault(group["Keys"][0], "")
                metrics = group["Metrics"]
                unit = metrics["UnblendedCost"]["Unit"]
                totals[(billing_account, day, unit)] += _amount(metrics, "UnblendedCost")
    return names, dict(totals)


def fetch_cost_explorer(window: DateWindow, config: AwsConfig, session: AwsSession) -> Fetched:
    """Every page of every query; accounts in id order so the request sequence is stable."""
    ce = session.client("ce", region="us-east-1")
    billing_account = config.billing_account_id
    discovery = _pages(session, ce, account_totals_request(window), "ce:GetCostAndUsage")
    names, totals = _linked_accounts(discovery, billing_account)
    requests = discovery.requests
    # Query 3 from the month's 1st: a monthly fee dated before the window has shares inside it.
    charges_window = DateWindow(window.start.replace(day=1), window.end)
    rows: list[dict[str, Any]] = []
    for account in sorted(names):
        for usage, request in (
            (True, account_request(window, account, usage=True)),
            (False, account_request(charges_window, account, usage=False)),
        ):
            what = f"ce:GetCostAndUsage {account} {'usage' if usage else 'other record types'}"
            pages = _pages(session, ce, request, what)
            payer = (billing_account, names.get(billing_account, ""))
            rows.extend(_account_rows(pages, payer, account, names[account], usage=usage))
            requests += pages.requests
    rows, moved = spread_monthly_fees(rows, window)
    for key, amount in moved.items():
        totals[key] = totals.get(key, _ZERO) + amount
    frame = pd.DataFrame(rows, columns=None if rows else ["BillingAccountId"])
    return Fetched(
        frame,
        requests,
        SOURCE_COST_EXPLORER,
        reference_totals=totals,
        reference_source=REFERENCE_SOURCE,
    )


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
