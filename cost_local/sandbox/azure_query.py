"""The Cost Management query language as the sandbox understands it: validation with Azure's own
error texts, daily aggregation into positional rows, and skiptokens for nextLink paging."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from cost_local.sandbox.bills import QUANTUM, GeneratedLine
from cost_local.sandbox.simulator import Response

_USD_RATE = {"USD": Decimal(1), "EUR": Decimal("1.0842"), "GBP": Decimal("1.2675")}
_CHARGE_TYPE = {"Usage": "Usage", "Purchase": "Purchase", "Credit": "Refund", "Tax": "Tax"}
# Grouping dimension -> how to read it from a generated line.
_DIMENSIONS: dict[str, Any] = {
    "ServiceName": lambda x: x.service_name,
    "MeterCategory": lambda x: x.service_name,
    "Meter": lambda x: x.usage_type,
    "ResourceId": lambda x: x.resource_id.lower(),
    "ResourceGroupName": lambda x: resource_group(x.resource_id),
    "ResourceGroup": lambda x: resource_group(x.resource_id),
    "ResourceLocation": lambda x: x.region,
    "SubscriptionId": lambda x: x.sub_account_id,
    "SubscriptionName": lambda x: x.sub_account_name,
    "ChargeType": lambda x: _CHARGE_TYPE.get(x.charge_category, x.charge_category),
    "PricingModel": lambda x: "OnDemand",
    "UnitOfMeasure": lambda x: x.pricing_unit,
}
_AGGREGATIONS = ("Cost", "PreTaxCost", "CostUSD", "PreTaxCostUSD")


class AzureError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.response = Response(status, {"error": {"code": code, "message": message}})


@dataclass(frozen=True)
class Query:
    cost_type: str
    first: date
    last: date
    daily: bool
    aggregations: tuple[str, ...]
    grouping: tuple[str, ...]


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
    if dataset.get("granularity") not in ("Daily", "None"):
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
    dims = []
    for group in grouping:
        if group.get("type") != "Dimension" or group.get("name") not in _DIMENSIONS:
            raise invalid(
                f"Invalid dataset grouping: '{group.get('name')}'; valid values: "
                + ",".join(f"'{d}'" for d in _DIMENSIONS)
                + "."
            )
        dims.append(group["name"])
    return Query(
        body["type"], first, last, dataset["granularity"] == "Daily", tuple(names), tuple(dims)
    )


def aggregate(lines: list[GeneratedLine], query: Query) -> tuple[list[dict], list[list]]:
    sums: dict[tuple, list[Decimal]] = {}
    for line in lines:
        if not query.first <= line.charge_date <= query.last:
            continue
        key = (
            ((int(line.charge_date.strftime("%Y%m%d")),) if query.daily else ())
            + tuple(_DIMENSIONS[d](line) for d in query.grouping)
            + (line.currency,)
        )
        amount = line.effective_cost if query.cost_type == "AmortizedCost" else line.billed_cost
        totals = sums.setdefault(key, [Decimal(0)] * len(query.aggregations))
        for i, name in enumerate(query.aggregations):
            usd = name.endswith("USD")
            totals[i] += (amount * _USD_RATE[line.currency]).quantize(QUANTUM) if usd else amount
    columns = [{"name": n, "type": "Number"} for n in query.aggregations]
    columns += [{"name": "UsageDate", "type": "Number"}] if query.daily else []
    columns += [{"name": d, "type": "String"} for d in query.grouping]
    columns += [{"name": "Currency", "type": "String"}]
    rows = [[*totals, *key] for key, totals in sorted(sums.items())]
    return columns, rows


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
