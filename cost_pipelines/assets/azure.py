"""Azure costs per customer (Cost Management Query API), daily, in FOCUS 1.2 shape.

What is asked, per billing account and per period of at most one month (Microsoft serves a Daily
query for at most `to - 1 month + 1 day` and cuts a longer one from the start without an error):
- ActualCost and AmortizedCost, each twice, within the two-grouping limit:
  - `ChargeType In [Usage]`, grouped by ResourceId and ServiceName: the usage lines;
  - unfiltered, grouped by ServiceName and ChargeType: every other charge type (Purchase, Refund,
    UnusedReservation, UnusedSavingsPlan and whatever else Azure answers) with its service; these
    carry no resource (commitment purchases and unused commitment have none). The usage rows of
    this answer are not used: they are the same costs as the first query's.
  The two views are joined exactly on (day, resource, service, charge type, currency):
  BilledCost <- ActualCost, EffectiveCost <- AmortizedCost, each 0 where the line is only in the
  other view (covered usage is 0 in ActualCost; unused commitment is only amortized; commitment
  purchases and refunds are only actual), as Microsoft's FOCUS conversion does
  (finops-toolkit docs-mslearn/focus/convert.md).
- an ungrouped ActualCost query: the independent per-day total the reconciliation check uses.
Per run, over the whole window (granularity None, at most a year per query): ResourceId x
ResourceLocation (RegionId) and SubscriptionId x SubscriptionName (SubAccountName): labels only.

Tags. The Query API answers tags only when grouped by one named tag (`{"type": "TagKey",
"name": key}`, answer columns TagKey and TagValue, TagValue null where the resource lacks it), so
only the tag names the customer configures (`providers.azure.tag_keys`) are collected: per period
and name, one Daily AmortizedCost query grouped by ResourceId and that TagKey (the amortized view
has every resource's usage, covered usage too). A usage line takes the value its resource had
that day; a resource answered with two values on one day (retagged that day) takes the one with
the larger cost. Azure tag names are case-insensitive ("tag names are case-insensitive for
operations", Azure Resource Manager docs), so they are stored lowercase; values as written.
Charges without a resource (purchases, refunds, unused commitment) carry no tags.

Requests per run and billing account (each page one more): 5 per period + 2 label queries, plus
one per period and configured tag name (before tags: 5 per period + 2).

ChargeCategory follows ChargeType, never the sign: Usage, UnusedReservation, UnusedSavingsPlan ->
Usage; Purchase -> Purchase; Refund -> Purchase with ChargeClass Correction (Microsoft's FOCUS
mapping: a refund corrects an earlier purchase); Credit and Tax as themselves (Cost Management
has none today; they are never invented); anything else -> Adjustment. x_ChargeType keeps
ChargeType. ListCost and ContractedCost are not in the Query API: not supplied (NULL).

Resource ids are case-insensitive in Azure and Cost Management writes one resource in several
casings: lines are keyed and stored by the lowercased id (SubAccountId, its subscription, too).

Coverage: Azure answers only days that have cost, so a day it did not answer cannot be told from
a day without cost. The collector never replaces days it has reason to think were not answered:
if an account's first answered day is after the window start, the window starts there (earlier
days keep what is stored); if a later period's answer starts after that period's first day
(Azure served less than asked), the collection fails naming the account and the days.
"""

from __future__ import annotations

import calendar
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
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
REFERENCE_SOURCE = "the Azure Cost Management ungrouped ActualCost query"
USAGE = "Usage"
USAGE_GROUPING = ("ResourceId", "ServiceName")  # filtered to ChargeType Usage
CHARGE_TYPE_GROUPING = ("ServiceName", "ChargeType")  # every charge type, no resource
MAX_DAILY_DAYS = 31  # and never past the same day of the next month (see `periods`)
MAX_LABEL_DAYS = 365  # "The time period for pulling the data cannot exceed 1 year"
CHARGE_CATEGORY = {
    "Usage": "Usage",
    "UnusedReservation": "Usage",
    "UnusedSavingsPlan": "Usage",
    "Purchase": "Purchase",
    "Refund": "Purchase",
    "Credit": "Credit",
    "Tax": "Tax",
}
CORRECTION_CHARGE_TYPES = frozenset({"Refund"})
_Key = tuple[date, str, str, str, str]  # day, resource id (lowercase), service, type, currency


def charge_category(charge_type: str) -> str:
    return CHARGE_CATEGORY.get(charge_type, "Adjustment")


def query_body(
    period: DateWindow,
    cost_type: str,
    grouping: Iterable[str] = (),
    *,
    charge_types: Iterable[str] | None = None,
    daily: bool = True,
) -> dict[str, Any]:
    """A query over [start, end); Azure's `to` is inclusive, so it ends the day before."""
    last = period.end - timedelta(days=1)
    dataset: dict[str, Any] = {
        "granularity": "Daily" if daily else "None",
        "aggregation": {"totalCost": {"name": "Cost", "function": "Sum"}},
    }
    if names := list(grouping):
        dataset["grouping"] = [{"type": "Dimension", "name": name} for name in names]
    if charge_types is not None:
        dataset["filter"] = {
            "dimensions": {"name": "ChargeType", "operator": "In", "values": list(charge_types)}
        }
    return {
        "type": cost_type,
        "timeframe": "Custom",
        "timePeriod": {"from": f"{period.start}T00:00:00+00:00", "to": f"{last}T23:59:59+00:00"},
        "dataset": dataset,
    }


def _next_month(day: date) -> date:
    """The same day of the next month, or that month's last day."""
    year, month = (day.year, day.month + 1) if day.month < 12 else (day.year + 1, 1)
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def periods(window: DateWindow) -> list[DateWindow]:
    """The window in Daily periods Azure serves whole: [start, end) with end at most the same
    day of the next month (so `to - 1 month + 1 day` is never after `from`) and 31 days."""
    out, start = [], window.start
    while start < window.end:
        end = min(_next_month(start), start + timedelta(days=MAX_DAILY_DAYS), window.end)
        out.append(DateWindow(start, end))
        start = end
    return out


def _usage_date(value: Any) -> date:
    number = int(value)
    return date(number // 10000, number // 100 % 100, number % 100)


def _columns(page: dict[str, Any], wanted: Iterable[str]) -> list[int]:
    names = [column["name"] for column in page["columns"]]
    try:
        return [names.index(name) for name in wanted]
    except ValueError:
        raise ApiRefused(f"Azure Cost Management answered unexpected columns {names}") from None


@dataclass
class _Answer:
    """One billing account's answers for one period."""

    period: DateWindow
    actual: dict[_Key, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    amortized: dict[_Key, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    totals: dict[tuple[date, str], Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    days: set[date] = field(default_factory=set)
    outside: int = 0
    casings: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))

    def day(self, value: Any) -> date | None:
        day = _usage_date(value)
        if not self.period.start <= day < self.period.end:
            self.outside += 1
            return None
        self.days.add(day)
        return day


def _grouped(
    session: AzureSession,
    scope: str,
    answer: _Answer,
    cost_type: str,
    grouping: tuple[str, ...],
    charge_types: Iterable[str] | None,
) -> None:
    into = answer.amortized if cost_type == "AmortizedCost" else answer.actual
    body = query_body(answer.period, cost_type, grouping, charge_types=charge_types)
    by_resource = grouping == USAGE_GROUPING
    for page in session.query(scope, body):
        cost, day_at, first, second, currency = _columns(
            page, ("Cost", "UsageDate", *grouping, "Currency")
        )
        for row in page["rows"]:
            day = answer.day(row[day_at])
            if day is None:
                continue
            if by_resource:
                raw = str(row[first] or "")
                resource, service, charge_type = raw.lower(), str(row[second] or ""), USAGE
                if raw:
                    answer.casings[resource].add(raw)
            else:
                resource, service, charge_type = "", str(row[first] or ""), str(row[second] or "")
                if charge_type == USAGE:
                    continue  # the usage query has these, per resource
            into[(day, resource, service, charge_type, str(row[currency]))] += Decimal(row[cost])


def _totals(session: AzureSession, scope: str, answer: _Answer) -> None:
    for page in session.query(scope, query_body(answer.period, "ActualCost")):
        cost, day_at, currency = _columns(page, ("Cost", "UsageDate", "Currency"))
        for row in page["rows"]:
            day = answer.day(row[day_at])
            if day is not None:
                answer.totals[(day, str(row[currency]))] += Decimal(row[cost])


def _answer(session: AzureSession, scope: str, period: DateWindow) -> _Answer:
    answer = _Answer(period)
    for cost_type in ("ActualCost", "AmortizedCost"):
        _grouped(session, scope, answer, cost_type, USAGE_GROUPING, [USAGE])
        _grouped(session, scope, answer, cost_type, CHARGE_TYPE_GROUPING, None)
    _totals(session, scope, answer)
    return answer


def _labels(
    session: AzureSession, scope: str, window: DateWindow, grouping: tuple[str, str]
) -> dict[str, set[str]]:
    """Second dimension values per (lowercased) first, over the window, granularity None."""
    out: dict[str, set[str]] = defaultdict(set)
    start = window.start
    while start < window.end:
        end = min(start + timedelta(days=MAX_LABEL_DAYS), window.end)
        body = query_body(DateWindow(start, end), "ActualCost", grouping, daily=False)
        for page in session.query(scope, body):
            first, second = _columns(page, grouping)
            for row in page["rows"]:
                if row[first] and row[second]:
                    out[str(row[first]).lower()].add(str(row[second]))
        start = end
    return out


# (day, lowercased resource id) -> tag name (lowercase) -> value -> |cost| that day
_TagCosts = dict[tuple[date, str], dict[str, dict[str, Decimal]]]


def tag_query_body(period: DateWindow, key: str) -> dict[str, Any]:
    """The period's amortized cost per day, resource and value of one named tag."""
    body = query_body(period, "AmortizedCost", ("ResourceId",))
    body["dataset"]["grouping"].append({"type": "TagKey", "name": key})
    return body


def _tag_costs(
    session: AzureSession, scope: str, window: DateWindow, keys: Iterable[str]
) -> _TagCosts:
    found: _TagCosts = defaultdict(lambda: defaultdict(lambda: defaultdict(Decimal)))
    names = sorted({key.lower() for key in keys})
    for period in periods(window):
        for name in names:
            for page in session.query(scope, tag_query_body(period, name)):
                cost, day_at, resource, value = _columns(
                    page, ("Cost", "UsageDate", "ResourceId", "TagValue")
                )
                for row in page["rows"]:
                    day = _usage_date(row[day_at])
                    if (
                        not row[resource]
                        or row[value] is None
                        or not period.start <= day < period.end
                    ):
                        continue
                    found[(day, str(row[resource]).lower())][name][str(row[value])] += abs(
                        Decimal(row[cost])
                    )
    return found


def _tags_of(costs: dict[str, dict[str, Decimal]]) -> dict[str, str]:
    return {
        name: max(values.items(), key=lambda item: (item[1], item[0]))[0]
        for name, values in sorted(costs.items())
    }


def _region(locations: set[str]) -> str:
    """RegionId as Microsoft's FOCUS conversion writes it: lowercase, no spaces; empty when a
    resource is reported in more than one location."""
    regions = {location.lower().replace(" ", "") for location in locations}
    return regions.pop() if len(regions) == 1 else ""


def _covered_from(account: str, answers: list[_Answer]) -> date | None:
    """The first day of the window the account's answers cover; None when Azure answered no
    day at all (nothing to keep: the window is replaced by nothing). Fails when a period after
    the first answered one starts late: Azure did not answer its first days."""
    covered: date | None = None
    for answer in answers:
        if not answer.days:
            continue
        first = min(answer.days)
        if covered is None:
            covered = first
        elif first > answer.period.start:
            raise ApiRefused(
                f"Azure Cost Management answered account {account} for "
                f"[{answer.period.start}, {answer.period.end}) only from {first}: the days "
                f"[{answer.period.start}, {first}) were not answered, so they are not replaced"
            )
    return covered


def _subscription(resource_id: str) -> str:
    parts = resource_id.split("/")
    return parts[2] if len(parts) > 2 and parts[1] == "subscriptions" else ""


def _lines(
    account: str,
    answers: list[_Answer],
    regions: dict[str, set[str]],
    names: dict[str, set[str]],
    tags: _TagCosts,
) -> list[dict[str, Any]]:
    rows = []
    casings: dict[str, set[str]] = defaultdict(set)
    for answer in answers:
        for resource, seen in answer.casings.items():
            casings[resource] |= seen
    for answer in answers:
        for key in sorted(answer.actual.keys() | answer.amortized.keys()):
            day, resource_id, service, charge_type, currency = key
            sub = _subscription(resource_id)
            shown = min(casings.get(resource_id) or {resource_id})
            sub_names = names.get(sub, set())
            rows.append(
                {
                    "ChargePeriodStart": day.isoformat(),
                    "BillingAccountId": account,
                    "SubAccountId": sub,
                    "SubAccountName": min(sub_names) if len(sub_names) == 1 else "",
                    "ProviderName": "Microsoft",
                    "ServiceName": service,
                    "ServiceCategory": service_category("azure", service),
                    "ChargeCategory": charge_category(charge_type),
                    "ChargeClass": (
                        "Correction" if charge_type in CORRECTION_CHARGE_TYPES else None
                    ),
                    "x_ChargeType": charge_type,
                    "ResourceId": resource_id,
                    "ResourceName": shown.rsplit("/", 1)[-1] if resource_id else "",
                    "RegionId": _region(regions.get(resource_id, set())),
                    "BilledCost": answer.actual.get(key, Decimal(0)),
                    "EffectiveCost": answer.amortized.get(key, Decimal(0)),
                    "BillingCurrency": currency,
                    "Tags": _tags_of(tags.get((day, resource_id), {})),
                }
            )
    return rows


def fetch_azure(window: DateWindow, config: AzureConfig, session: AzureSession) -> Fetched:
    """Every billing account's daily costs in the window, billed and amortized, with the
    ungrouped ActualCost total of every day as the reference."""
    answered: dict[str, list[_Answer]] = {}
    labels: dict[str, tuple[dict[str, set[str]], dict[str, set[str]], _TagCosts]] = {}
    for account in config.billing_account_ids:
        scope = session.billing_account_scope(account)
        answered[account] = [_answer(session, scope, period) for period in periods(window)]
        labels[account] = (
            _labels(session, scope, window, ("ResourceId", "ResourceLocation")),
            _labels(session, scope, window, ("SubscriptionId", "SubscriptionName")),
            _tag_costs(session, scope, window, config.tag_keys),
        )
    starts = [
        start
        for account, answers in answered.items()
        if (start := _covered_from(account, answers)) is not None
    ]
    start = max([window.start, *starts])
    covered = DateWindow(start, window.end) if start < window.end else window
    rows: list[dict[str, Any]] = []
    reference: dict[tuple[str, date, str], Decimal] = {}
    outside = 0
    for account, answers in answered.items():
        regions, names, tags = labels[account]
        rows.extend(
            row
            for row in _lines(account, answers, regions, names, tags)
            if covered.start.isoformat() <= row["ChargePeriodStart"]
        )
        for answer in answers:
            outside += answer.outside
            for (day, currency), total in answer.totals.items():
                if covered.start <= day:
                    reference[(account, day, currency)] = total
    frame = pd.DataFrame(rows, columns=None if rows else ["BillingAccountId"])
    return Fetched(
        frame,
        session.requests,
        SOURCE,
        window=covered if covered != window else None,
        reference_totals=reference,
        reference_source=REFERENCE_SOURCE,
        outside_window=outside,
    )


AZURE = ProviderSpec(
    provider="azure",
    title="Azure",
    description=(
        "Daily Azure costs of one customer in FOCUS shape from the Cost Management Query API "
        "(ActualCost as BilledCost, AmortizedCost as EffectiveCost, ChargeCategory from "
        "ChargeType); re-collects the month to date, 5 trailing days and the previous month "
        "until the 10th (Azure rerates until the invoice closes). Fails with 'not configured' "
        "for customers without providers.azure."
    ),
    kinds=frozenset({"azure"}),
    fetch=fetch_azure,
    resource=AzureResource(),
)
