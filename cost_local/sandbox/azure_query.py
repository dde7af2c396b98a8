"""The Cost Management query language as the sandbox understands it: validation with Azure's own
error texts, filters on any dimension, daily (at most one month, as Microsoft serves it) or
period-total aggregation into positional rows, and skiptokens for nextLink paging."""

from __future__ import annotations

import base64
import calendar
import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from cost_local.sandbox.azure_billing import CostRecord
from cost_local.sandbox.bills import QUANTUM
from cost_local.sandbox.simulator import Response

_USD_RATE = {"USD": Decimal(1), "EUR": Decimal("1.0842"), "GBP": Decimal("1.2675")}
# Grouping and filter dimension -> how to read it from a cost-details record. Values are
# compared as Cost Management stores them: one resource written in two casings is two values.
_DIMENSIONS: dict[str, Any] = {
    "ServiceName": lambda x: x.service_name,
    "MeterCategory": lambda x: x.service_name,
    "Meter": lambda x: x.meter,
    "ResourceId": lambda x: x.resource_id,
    "ResourceGroupName": lambda x: resource_group(x.resource_id),
    "ResourceGroup": lambda x: resource_group(x.resource_id),
    "ResourceLocation": lambda x: x.location,
    "SubscriptionId": lambda x: x.subscription_id,
    "SubscriptionName": lambda x: x.subscription_name,
    "ChargeType": lambda x: x.charge_type,
    "PricingModel": lambda x: x.pricing_model,
    "UnitOfMeasure": lambda x: x.unit,
}
_AGGREGATIONS = ("Cost", "PreTaxCost", "CostUSD", "PreTaxCostUSD")
_GRANULARITIES = ("Daily", "None")


class AzureError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.response = Response(status, {"error": {"code": code, "message": message}})


@dataclass(frozen=True)
class TagGrouping:
    """A `{"type": "TagKey", "name": key}` grouping: two answer columns, TagKey (the name as
    asked) and TagValue (null where the row's resource lacks the tag). Azure tag names are
    case-insensitive, so `team` also groups a resource tagged `Team`."""

    name: str

    def value(self, record: CostRecord) -> str | None:
        wanted = self.name.lower()
        return next((v for k, v in record.tags.items() if k.lower() == wanted), None)


# A filter: ("and" | "or", parts) or ("dimension", name, values).
Filter = tuple[Any, ...]


@dataclass(frozen=True)
class Query:
    cost_type: str
    first: date
    last: date
    daily: bool
    aggregations: tuple[str, ...]
    grouping: tuple[str | TagGrouping, ...]
    filter: Filter | None = None


def daily_first_day(first: date, last: date) -> date:
    """Where a Daily query really starts: Microsoft serves at most one month per Daily query and
    moves `from` to `to - 1 month + 1 day` without an error (microsoft/azure-skills cost-query
    guardrails: "Daily | 31 days | `from` truncated to `to - 1 month + 1 day`")."""
    year, month = (last.year, last.month - 1) if last.month > 1 else (last.year - 1, 12)
    day = min(last.day, calendar.monthrange(year, month)[1])
    earliest = date(year, month, day) + timedelta(days=1)
    return max(first, earliest)


def parse_query(body: Any) -> Query:
    def invalid(reason: str) -> AzureError:
        return AzureError(400, "BadRequest", f"Invalid query definition: {reason}")

    if not isinstance(body, dict) or not isinstance(body.get("dataset"), dict):
        raise invalid("Dataset is invalid or not supplied.")
    if body.get("type") not in ("ActualCost", "AmortizedCost", "Usage"):
        raise invalid(f"Invalid query type: '{body.get('type')}'.")
    if body.get("timeframe") != "Custom" or not isinstance(body.get("timePeriod"), dict):
        raise invalid("The sandbox answers timeframe 'Custom' with a timePeriod.")
    try:
        first = datetime.fromisoformat(body["timePeriod"]["from"]).date()
        last = datetime.fromisoformat(body["timePeriod"]["to"]).date()
    except (KeyError, TypeError, ValueError) as error:
        raise invalid(f"Invalid timePeriod: {error}.") from None
    if last < first or (last - first).days > 366:
        raise invalid("The time period for pulling the data cannot exceed 1 year(s).")
    dataset = body["dataset"]
    if dataset.get("granularity") not in _GRANULARITIES:
        raise invalid(f"Invalid granularity: '{dataset.get('granularity')}'.")
    aggregation = dataset.get("aggregation") or {}
    if not aggregation or not isinstance(aggregation, dict):
        raise invalid("Dataset aggregation is required.")
    names = []
    for alias, spec in aggregation.items():
        if not isinstance(spec, dict) or spec.get("function") != "Sum":
            raise invalid(f"Invalid aggregation function for '{alias}'.")
        if spec.get("name") not in _AGGREGATIONS:
            raise invalid(f"Invalid aggregation column: '{spec.get('name')}'.")
        names.append(spec["name"])
    grouping = dataset.get("grouping") or []
    if len(grouping) > 2:
        raise invalid("Parameter 'QueryDataset.grouping' must contain at most 2 items.")
    dims: list[str | TagGrouping] = []
    for group in grouping:
        if group.get("type") == "TagKey" and isinstance(group.get("name"), str) and group["name"]:
            dims.append(TagGrouping(group["name"]))
        elif group.get("type") != "Dimension" or group.get("name") not in _DIMENSIONS:
            raise invalid(_unknown_dimension(group.get("name")))
        else:
            dims.append(group["name"])
    daily = dataset["granularity"] == "Daily"
    if daily:
        first = daily_first_day(first, last)
    where = _filter(dataset["filter"], invalid) if dataset.get("filter") is not None else None
    return Query(body["type"], first, last, daily, tuple(names), tuple(dims), where)


def _unknown_dimension(name: Any) -> str:
    return (
        f"Invalid dataset grouping: '{name}'; valid values: "
        + ",".join(f"'{d}'" for d in _DIMENSIONS)
        + "."
    )


def _filter(spec: Any, invalid: Any) -> Filter:
    """The Query API's filter: `and` / `or` of filters, or `dimensions` {name, operator In,
    values}; names compare case-insensitively, values exactly."""
    if not isinstance(spec, dict) or len(spec) != 1:
        raise invalid("A filter has exactly one of 'and', 'or', 'dimensions'.")
    [(kind, value)] = spec.items()
    if kind in ("and", "or"):
        if not isinstance(value, list) or len(value) < 2:
            raise invalid(f"Filter '{kind}' needs at least 2 expressions.")
        return (kind, tuple(_filter(part, invalid) for part in value))
    if kind == "dimensions" and isinstance(value, dict):
        name = next((d for d in _DIMENSIONS if d.lower() == str(value.get("name")).lower()), None)
        if name is None:
            raise invalid(_unknown_dimension(value.get("name")))
        if value.get("operator") != "In" or not isinstance(value.get("values"), list):
            raise invalid("Filter operator must be 'In' with a list of values.")
        return ("dimension", name, frozenset(str(v) for v in value["values"]))
    raise invalid(f"Unsupported filter '{kind}'.")


def _matches(where: Filter | None, record: CostRecord) -> bool:
    if where is None:
        return True
    if where[0] == "and":
        return all(_matches(part, record) for part in where[1])
    if where[0] == "or":
        return any(_matches(part, record) for part in where[1])
    return bool(_DIMENSIONS[where[1]](record) in where[2])


def aggregate(records: list[CostRecord], query: Query) -> tuple[list[dict], list[list]]:
    """Sum the records of the query's dataset (ActualCost or AmortizedCost) in its period."""
    amortized = query.cost_type == "AmortizedCost"
    sums: dict[tuple, list[Decimal]] = {}
    for record in records:
        if not query.first <= record.day <= query.last:
            continue
        amount = record.amortized if amortized else record.actual
        if amount is None or not _matches(query.filter, record):
            continue  # not in this dataset
        key = (
            ((int(record.day.strftime("%Y%m%d")),) if query.daily else ())
            + tuple(part for d in query.grouping for part in _group_values(d, record))
            + (record.currency,)
        )
        totals = sums.setdefault(key, [Decimal(0)] * len(query.aggregations))
        for i, name in enumerate(query.aggregations):
            usd = name.endswith("USD")
            totals[i] += (amount * _USD_RATE[record.currency]).quantize(QUANTUM) if usd else amount
    columns = [{"name": n, "type": "Number"} for n in query.aggregations]
    columns += [{"name": "UsageDate", "type": "Number"}] if query.daily else []
    for d in query.grouping:
        names = ("TagKey", "TagValue") if isinstance(d, TagGrouping) else (d,)
        columns += [{"name": name, "type": "String"} for name in names]
    columns += [{"name": "Currency", "type": "String"}]
    ordered = sorted(sums.items(), key=lambda item: tuple("" if v is None else v for v in item[0]))
    rows = [[*totals, *key] for key, totals in ordered]
    return columns, rows


def _group_values(grouping: str | TagGrouping, record: CostRecord) -> tuple[Any, ...]:
    if isinstance(grouping, TagGrouping):
        return (grouping.name, grouping.value(record))
    return (_DIMENSIONS[grouping](record),)


def resource_group(resource_id: str) -> str:
    parts = resource_id.lower().split("/")
    return parts[4] if len(parts) > 4 and parts[3] == "resourcegroups" else ""


def skiptoken(offset: int, body: bytes) -> str:
    raw = json.dumps({"o": offset, "h": hashlib.sha256(body).hexdigest()[:16]}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def page_offset(token: str | None, body: bytes) -> int:
    if not token:
        return 0
    try:
        state = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        valid = state["h"] == hashlib.sha256(body).hexdigest()[:16]
    except (ValueError, KeyError, TypeError):
        valid = False
    if not valid:
        raise AzureError(400, "BadRequest", "Invalid skiptoken: it belongs to another query.")
    return int(state["o"])
