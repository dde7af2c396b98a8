"""Azure's reservation recommendations (Consumption API, api-version 2023-05-01) per billing
account: `GET {scope}/providers/Microsoft.Consumption/reservationRecommendations` filtered by
scope (Single/Shared) and look-back period, nextLink paging. Two shapes answer: `modern`
(billing account scopes; amounts as {currency, value}) and `legacy` (subscriptions of an EA;
plain numbers in the billing currency). Their cost figures cover the look-back's hours
(`totalHours`), so the monthly saving is netSavings x 730 / those hours."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from cost_pipelines.assets.recommendations.model import Recommendation, amount
from cost_pipelines.customers import AzureConfig, AzureRecommendationSettings
from cost_pipelines.resources.azure import AzureSession
from cost_pipelines.resources.rest import exact_json
from cost_pipelines.resources.retry import Paginator

SOURCE = "azure_consumption"
API_VERSION = "2023-05-01"
HOURS_PER_MONTH = Decimal(730)
LOOK_BACK_DAYS = {"Last7Days": 7, "Last30Days": 30, "Last60Days": 60}


def _money(value: Any, fallback_currency: str, what: str) -> tuple[Decimal, str]:
    if isinstance(value, dict):  # modern: {"currency": "EUR", "value": 12.5}
        return amount(value.get("value"), what), str(value.get("currency") or fallback_currency)
    return amount(value, what), fallback_currency


def recommendation(
    item: dict[str, Any], settings: AzureRecommendationSettings, currency: str
) -> Recommendation | None:
    """One answered item as a Recommendation; an item for another term than asked is None."""
    props = item.get("properties", {})
    term = str(props.get("term") or "")
    if term and term != settings.term:
        return None
    saving, money_currency = _money(props.get("netSavings"), currency, "netSavings")
    # modern items give the look-back in days (30), legacy ones by name (Last30Days)
    raw_look_back = props.get("lookBackPeriod") or settings.look_back
    look_back = f"Last{raw_look_back}Days" if isinstance(raw_look_back, int) else str(raw_look_back)
    hours = props.get("totalHours")
    covered = (
        Decimal(str(hours))
        if hours not in (None, "", 0)
        else Decimal(24 * LOOK_BACK_DAYS.get(look_back, 30))
    )
    sku = str(props.get("skuName") or item.get("sku") or "")
    scope = str(props.get("scope") or settings.scope)
    location = str(props.get("location") or item.get("location") or "")
    return Recommendation(
        key=f"azure:reservation:{scope}:{props.get('subscriptionId', '')}:{sku}:{location}:{term}",
        provider="azure",
        kind="reservation",
        source=SOURCE,
        source_id=str(item.get("id") or item.get("name") or ""),
        scope=f"{scope} {props.get('subscriptionId') or ''}".strip(),
        resource_id=f"{props.get('resourceType', '')}/{sku}/{location}",
        currency=money_currency,
        monthly_saving=saving * HOURS_PER_MONTH / covered,
        term=term,
        lookback=look_back,
        evidence={"kind": item.get("kind"), **props},
        fetched_at=datetime.now(UTC),
    )


def fetch_azure_recommendations(
    session: AzureSession,
    config: AzureConfig,
    settings: AzureRecommendationSettings,
    currency: str,
) -> tuple[list[Recommendation], int]:
    """Every billing account's recommendations (legacy items in `currency`) and requests made."""
    before = session.requests
    found = []
    flt = (
        f"properties/scope eq '{settings.scope}' and "
        f"properties/lookBackPeriod eq '{settings.look_back}'"
    )
    for account in config.billing_account_ids:
        scope = session.billing_account_scope(account)
        first = (
            f"{session.management_url}{scope}/providers/Microsoft.Consumption/"
            f"reservationRecommendations"
        )

        def fetch(next_link: str | None, first: str = first, scope: str = scope) -> Any:
            params = None if next_link else {"api-version": API_VERSION, "$filter": flt}
            response = session.api.request(
                "GET", next_link or first, f"reservation recommendations {scope}", params=params
            )
            return exact_json(response)

        for page in Paginator(fetch, lambda page: page.get("nextLink")):
            for item in page.get("value", []):
                if (found_one := recommendation(item, settings, currency)) is not None:
                    found.append(found_one)
    return found, session.requests - before
