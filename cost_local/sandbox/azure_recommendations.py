"""The Consumption API's reservation recommendations as the local Azure answers them
(`GET {scope}/providers/Microsoft.Consumption/reservationRecommendations`, api-version
2023-05-01): `modern` items at a billing account scope (amounts as {currency, value},
lookBackPeriod in days), `legacy` items at a subscription scope (plain numbers, lookBackPeriod
as named). `$filter` takes properties/scope (Single, Shared; default Single),
properties/lookBackPeriod (Last7Days, Last30Days, Last60Days; default Last7Days) and
properties/resourceType (only VirtualMachines has recommendations here). Figures:
sandbox/commitments.py; both terms are answered."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from cost_local.sandbox.azure_query import AzureError
from cost_local.sandbox.bills import GeneratedLine
from cost_local.sandbox.commitments import AZURE_LOOKBACK, AzureReservation, azure_reservations

API_VERSIONS = ("2023-05-01", "2024-08-01")
_CLAUSE = re.compile(r"^\s*properties/(\w+)\s+eq\s+'([^']*)'\s*$", re.I)
_FILTERABLE = {"scope": ("Single", "Shared"), "lookbackperiod": tuple(AZURE_LOOKBACK)}


def parse_filter(text: str) -> dict[str, str]:
    """The $filter's clauses joined by `and`; anything else is Azure's 400."""
    found = {"scope": "Single", "lookbackperiod": "Last7Days", "resourcetype": "VirtualMachines"}
    for clause in re.split(r"\s+and\s+", text.strip(), flags=re.I) if text.strip() else []:
        match = _CLAUSE.match(clause)
        if match is None:
            raise AzureError(400, "BadRequest", f"Invalid $filter clause: {clause!r}")
        name, value = match[1].lower(), match[2]
        allowed = _FILTERABLE.get(name)
        if name != "resourcetype" and (allowed is None or value not in allowed):
            raise AzureError(400, "BadRequest", f"Invalid $filter value {value!r} for {match[1]}")
        found[name] = value
    return found


def _day(value: date) -> str:
    return f"{value.isoformat()}T00:00:00Z"


def _item(
    scope: str, found: AzureReservation, look_back: str, shared: str, currency: str, legacy: str
) -> dict[str, Any]:
    name = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{scope}:{found.sku}:{found.region}:{found.term}"))

    def money(value: Any) -> Any:
        return value if legacy else {"currency": currency, "value": value}

    properties: dict[str, Any] = {
        "lookBackPeriod": look_back if legacy else AZURE_LOOKBACK[look_back],
        "instanceFlexibilityRatio": 1,
        "instanceFlexibilityGroup": found.sku.split("_")[1][:1] + " Series",
        "normalizedSize": found.sku,
        "recommendedQuantityNormalized": found.quantity,
        "meterId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"meter:{found.sku}:{found.region}")),
        "resourceType": "virtualmachines",
        "term": found.term,
        "costWithNoReservedInstances": money(found.cost_without),
        "recommendedQuantity": found.quantity,
        "totalCostWithReservedInstances": money(found.cost_with),
        "netSavings": money(found.net_savings),
        "firstUsageDate": _day(found.first_day),
        "scope": shared,
        "skuProperties": [
            {"name": "Cores", "value": "4"},
            {"name": "MemoryInMB", "value": "16384"},
        ],
    }
    if legacy:
        properties["subscriptionId"] = legacy
    else:
        properties.update(
            {
                "location": found.region,
                "skuName": found.sku,
                "lastUsageDate": _day(found.last_day),
                "totalHours": found.hours,
            }
        )
    return {
        "id": f"{scope}/providers/Microsoft.Consumption/reservationRecommendations/{name}",
        "name": name,
        "type": "Microsoft.Consumption/reservationRecommendations",
        "location": found.region,
        "sku": found.sku,
        "kind": "legacy" if legacy else "modern",
        "properties": properties,
    }


def reservation_recommendations(
    scope: str, query: Mapping[str, str], lines: Sequence[GeneratedLine], today: date
) -> dict[str, Any]:
    """The answer for one scope: its lines' recommendations under the filter."""
    version = query.get("api-version")
    if version not in API_VERSIONS:
        raise AzureError(
            400,
            "InvalidApiVersionParameter",
            f"The api-version '{version}' is invalid. The supported versions are "
            f"'{','.join(API_VERSIONS)}'.",
        )
    wanted = parse_filter(query.get("$filter", ""))
    parts = scope.strip("/").split("/")
    lowered = [p.lower() for p in parts]
    if lowered[:3] == ["providers", "microsoft.billing", "billingaccounts"] and len(parts) == 4:
        own = [x for x in lines if x.billing_account_id.lower() == lowered[3]]
        legacy = ""
    elif lowered[:1] == ["subscriptions"] and len(parts) == 2:
        own = [x for x in lines if x.sub_account_id.lower() == lowered[1]]
        legacy = parts[1]
    else:
        own = []
        legacy = ""
    own = [x for x in own if x.provider == "azure"]
    if not own:
        raise AzureError(
            403,
            "AuthorizationFailed",
            "The client does not have authorization to perform action "
            f"'Microsoft.Consumption/reservationRecommendations/read' over scope '{scope}'.",
        )
    if wanted["resourcetype"].lower() != "virtualmachines":
        return {"value": []}
    account = own[0].billing_account_id
    look_back = wanted["lookbackperiod"]
    found = azure_reservations(own, account, today, look_back)
    currency = own[0].currency
    return {"value": [_item(scope, f, look_back, wanted["scope"], currency, legacy) for f in found]}
