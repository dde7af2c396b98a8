"""AWS Cost Explorer's purchase recommendations: Savings Plans
(GetSavingsPlansPurchaseRecommendation) and reservations (GetReservationPurchaseRecommendation),
for the term, payment option and look-back the customers file sets. Requests: one per Savings
Plans type and one per reservation service, plus their pages, at $0.01 each; AWS regenerates
them about daily, so they are asked at most once per `provider_interval`."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from cost_pipelines.assets.recommendations.model import CE_REQUEST_USD, Recommendation, amount
from cost_pipelines.customers import AwsRecommendationSettings
from cost_pipelines.resources.aws import AwsSession
from cost_pipelines.resources.retry import Paginator

SOURCE = "aws_cost_explorer"


def _pages(
    session: AwsSession, operation: Any, request: dict[str, Any], what: str
) -> Paginator[Any]:
    def fetch(token: str | None) -> Any:
        params = {**request, "NextPageToken": token} if token else request
        return session.call(operation, what, **params)

    return Paginator(fetch, lambda page: page.get("NextPageToken"))


def _request(settings: AwsRecommendationSettings, **what: str) -> dict[str, Any]:
    """Both operations' request: what to recommend, for the configured term, payment option
    and look-back, over the payer's accounts together."""
    return {
        **what,
        "TermInYears": settings.term,
        "PaymentOption": settings.payment_option,
        "LookbackPeriodInDays": settings.lookback,
        "AccountScope": "PAYER",
    }


def _fetched(metadata: dict[str, Any]) -> datetime:
    stamp = str(metadata.get("GenerationTimestamp") or "")
    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return datetime.now(UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def savings_plans(
    session: AwsSession, ce: Any, settings: AwsRecommendationSettings, sp_type: str
) -> tuple[list[Recommendation], int]:
    """One Savings Plans type's recommendations, one per detail (per account when LINKED)."""
    pages = _pages(
        session,
        ce.get_savings_plans_purchase_recommendation,
        _request(settings, SavingsPlansType=sp_type),
        f"ce:GetSavingsPlansPurchaseRecommendation {sp_type}",
    )
    found = []
    for page in pages:
        metadata = page.get("Metadata", {})
        body = page.get("SavingsPlansPurchaseRecommendation", {})
        for detail in body.get("SavingsPlansPurchaseRecommendationDetails", []):
            plan = detail.get("SavingsPlansDetails", {})
            account = str(detail.get("AccountId") or "payer")
            upfront = amount(detail.get("UpfrontCost"), "UpfrontCost")
            monthly = amount(
                detail.get("EstimatedMonthlySavingsAmount"), "EstimatedMonthlySavingsAmount"
            )
            what = "/".join(str(plan.get(k) or "") for k in ("InstanceFamily", "Region"))
            found.append(
                Recommendation(
                    key=f"aws:savings_plan:{sp_type}:{account}:{what}:{settings.term}:"
                    f"{settings.payment_option}",
                    provider="aws",
                    kind="savings_plan",
                    source=SOURCE,
                    source_id=f"{metadata.get('RecommendationId', '')}/"
                    f"{detail.get('RecommendationDetailId', '')}",
                    scope=f"{body.get('AccountScope', 'PAYER')} {account}",
                    currency=str(detail.get("CurrencyCode") or "USD"),
                    monthly_saving=monthly,
                    upfront_cost=upfront,
                    break_even_months=(upfront / monthly) if upfront and monthly > 0 else None,
                    term=settings.term,
                    payment_option=settings.payment_option,
                    lookback=settings.lookback,
                    evidence={"SavingsPlansType": sp_type, **detail},
                    fetched_at=_fetched(metadata),
                )
            )
    return found, pages.requests


def _instance(details: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    for family, values in details.items():
        if isinstance(values, dict):
            return family, values
    return "", {}


def reservations(
    session: AwsSession, ce: Any, settings: AwsRecommendationSettings, service: str
) -> tuple[list[Recommendation], int]:
    """One service's reservation recommendations, one per instance type, region and account."""
    pages = _pages(
        session,
        ce.get_reservation_purchase_recommendation,
        _request(settings, Service=service),
        f"ce:GetReservationPurchaseRecommendation {service}",
    )
    found = []
    for page in pages:
        metadata = page.get("Metadata", {})
        for recommendation in page.get("Recommendations", []):
            for detail in recommendation.get("RecommendationDetails", []):
                family, instance = _instance(detail.get("InstanceDetails", {}))
                account = str(detail.get("AccountId") or "payer")
                what = "/".join(str(instance.get(k) or "") for k in ("InstanceType", "Region"))
                break_even = detail.get("EstimatedBreakEvenInMonths")
                found.append(
                    Recommendation(
                        key=f"aws:reserved_instance:{service}:{account}:{what}:"
                        f"{settings.term}:{settings.payment_option}",
                        provider="aws",
                        kind="reserved_instance",
                        source=SOURCE,
                        source_id=f"{metadata.get('RecommendationId', '')}/{family}/{what}",
                        scope=f"{recommendation.get('AccountScope', 'PAYER')} {account}",
                        resource_id=what,
                        currency=str(detail.get("CurrencyCode") or "USD"),
                        monthly_saving=amount(
                            detail.get("EstimatedMonthlySavingsAmount"),
                            "EstimatedMonthlySavingsAmount",
                        ),
                        upfront_cost=amount(detail.get("UpfrontCost"), "UpfrontCost"),
                        break_even_months=None
                        if break_even in (None, "")
                        else amount(break_even, "EstimatedBreakEvenInMonths"),
                        term=settings.term,
                        payment_option=settings.payment_option,
                        lookback=settings.lookback,
                        evidence={"Service": service, **detail},
                        fetched_at=_fetched(metadata),
                    )
                )
    return found, pages.requests


def fetch_aws_recommendations(
    session: AwsSession, settings: AwsRecommendationSettings
) -> tuple[list[Recommendation], int]:
    """Every configured Savings Plans type and reservation service, and the requests made."""
    endpoint = os.environ.get(settings.endpoint_url_env) if settings.endpoint_url_env else None
    ce = session.client("ce", region="us-east-1", endpoint_url=endpoint or None)
    found: list[Recommendation] = []
    requests = 0
    for sp_type in settings.savings_plans_types:
        more, count = savings_plans(session, ce, settings, sp_type)
        found += more
        requests += count
    for service in settings.reservation_services:
        more, count = reservations(session, ce, settings, service)
        found += more
        requests += count
    return found, requests


def request_cost(requests: int) -> Decimal:
    """What the requests cost: Cost Explorer bills each one."""
    return CE_REQUEST_USD * requests
