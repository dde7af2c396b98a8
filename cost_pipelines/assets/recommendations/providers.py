"""`provider_recommendations`: per customer, the commitment purchases each provider itself
recommends (AWS Savings Plans and reservations, Azure reservations, GCP committed-use
discounts), downstream of the provider cost assets. Each provider's answer is published on its
own (pointer `provider_recommendations.<provider>`), at most once per `provider_interval`
(a day by default): Cost Explorer bills every request, and the providers regenerate their
advice about daily. Between two askings the last answer stays the current one."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError
from clickhouse_connect.driver.client import Client
from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    Failure,
    MaterializeResult,
    MetadataValue,
    PartitionsDefinition,
)

from cost_pipelines.assets.analytics.store import AnalysisConfig, analysis_asset, analysis_day
from cost_pipelines.assets.recommendations.aws import fetch_aws_recommendations, request_cost
from cost_pipelines.assets.recommendations.azure import fetch_azure_recommendations
from cost_pipelines.assets.recommendations.gcp import SCOPE as GCP_SCOPE
from cost_pipelines.assets.recommendations.gcp import fetch_gcp_recommendations
from cost_pipelines.assets.recommendations.model import (
    PROVIDER_ASSET,
    Recommendation,
    publish_recommendations,
)
from cost_pipelines.customers import Customer
from cost_pipelines.providers import PROVIDERS
from cost_pipelines.resources.retry import CollectionFailure

NO_API = {
    "vultr": "Vultr offers no commitment or purchase recommendation API: nothing to ask",
}
_LAST_ASKED_SQL = """
SELECT max(computed_at) FROM analytics_runs
WHERE customer_id = {customer_id:String} AND asset = {asset:String}
HAVING count() > 0
"""
_CURRENCY_SQL = """
SELECT BillingCurrency FROM costs_current(customer_id = {customer_id:String})
WHERE provider = {provider:String}
GROUP BY BillingCurrency ORDER BY count() DESC, BillingCurrency LIMIT 1
"""


class ProviderRecommendationsConfig(AnalysisConfig):
    """Optional run config: `force` asks the providers even inside their interval."""

    force: bool = False


def pointer(provider: str) -> str:
    """The analytics_runs asset name each provider's answer is published under."""
    return f"{PROVIDER_ASSET}.{provider}"


def last_asked(client: Client, customer_id: str, provider: str) -> datetime | None:
    params = {"customer_id": customer_id, "asset": pointer(provider)}
    rows = client.query(_LAST_ASKED_SQL, parameters=params).result_rows
    if not rows:
        return None
    moment: datetime = rows[0][0]
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def billing_currency(client: Client, customer_id: str, provider: str) -> str:
    """The currency the customer's stored costs of the provider are billed in (legacy Azure
    recommendations carry plain numbers in it)."""
    params = {"customer_id": customer_id, "provider": provider}
    rows = client.query(_CURRENCY_SQL, parameters=params).result_rows
    return str(rows[0][0]) if rows else "USD"


@dataclass(frozen=True)
class Asked:
    """What happened for one provider in one run, for the materialization's metadata."""

    status: str
    recommendations: int = 0
    requests: int = 0


def _ask(
    context: AssetExecutionContext, customer: Customer, provider: str, client: Client
) -> tuple[list[Recommendation], int] | str:
    """The provider's recommendations and requests made, or why it was not asked."""
    settings = customer.recommendations
    config: Any = customer.providers[provider]
    resources = context.resources
    if provider == "aws":
        with resources.aws.session(customer.id, config) as session:
            return fetch_aws_recommendations(session, settings.aws)
    if provider == "azure":
        currency = billing_currency(client, customer.id, "azure")
        with resources.azure.session(customer.id, config) as session:
            return fetch_azure_recommendations(session, config, settings.azure, currency)
    if provider == "gcp":
        if not (settings.gcp.projects and settings.gcp.locations):
            return (
                "not asked: the customer granted no Recommender access (set "
                "recommendations.gcp.projects and locations in the customers file)"
            )
        with resources.gcp.session(customer.id, config, scope=GCP_SCOPE) as session:
            return fetch_gcp_recommendations(session, config, settings.gcp)
    return NO_API.get(provider, f"{provider} has no recommendation source")


def ask_providers(
    context: AssetExecutionContext,
    customer: Customer,
    client: Client,
    today: date,
    force: bool,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> tuple[dict[str, Asked], list[str]]:
    """Ask every due provider of the customer and publish each answer; one provider's failure
    is reported and never keeps the others from being asked."""
    asked: dict[str, Asked] = {}
    failures = []
    interval: timedelta = customer.recommendations.provider_interval
    for provider in PROVIDERS:
        if provider in NO_API:
            asked[provider] = Asked(NO_API[provider])
            continue
        if provider not in customer.providers:
            asked[provider] = Asked("not collected for this customer")
            continue
        last = last_asked(client, customer.id, provider)
        if not force and last is not None and now() - last < interval:
            asked[provider] = Asked(
                f"not asked: last asked {last:%Y-%m-%d %H:%M} UTC, interval {interval}"
            )
            continue
        try:
            answer = _ask(context, customer, provider, client)
        except (CollectionFailure, ValueError, KeyError) as exc:
            failures.append(f"{provider}: {exc}")
            asked[provider] = Asked(f"failed: {exc}")
            continue
        except ClientError as exc:  # Cost Explorer refused (DataUnavailableException, ...)
            error = exc.response.get("Error", {})
            reason = f"{error.get('Code', 'ClientError')}: {str(error.get('Message', ''))[:200]}"
            failures.append(f"{provider}: {reason}")
            asked[provider] = Asked(f"failed: {reason}")
            continue
        if isinstance(answer, str):
            asked[provider] = Asked(answer)
            continue
        found, requests = answer
        publish_recommendations(
            client, asset=pointer(provider), customer_id=customer.id, as_of=today, found=found
        )
        asked[provider] = Asked("asked", len(found), requests)
    return asked, failures


def markdown(asked: dict[str, Asked]) -> str:
    head = "| provider | status | recommendations | requests |\n|---|---|---|---|"
    rows = [f"| {p} | {a.status} | {a.recommendations} | {a.requests} |" for p, a in asked.items()]
    return "\n".join([head, *rows])


def build_provider_recommendations_asset(partitions: PartitionsDefinition) -> AssetsDefinition:
    @analysis_asset(
        PROVIDER_ASSET,
        partitions,
        "Commitment purchases the providers recommend (AWS Savings Plans and reservations, "
        "Azure reservations, GCP committed-use discounts), asked at most once per interval "
        "(a day by default: Cost Explorer bills $0.01 a request)",
        resources=frozenset({"warehouse", "customers", "aws", "azure", "gcp"}),
    )
    def provider_recommendations(
        context: AssetExecutionContext, config: ProviderRecommendationsConfig
    ) -> MaterializeResult:  # type: ignore[type-arg]
        customer_id = context.partition_key
        book = context.resources.customers.load()
        if customer_id in book.invalid:
            raise Failure(
                "customer configuration is invalid: " + "; ".join(book.invalid[customer_id])
            )
        customer = book.customers.get(customer_id)
        if customer is None:
            raise Failure(f"customer {customer_id!r} is not in the customers file {book.path}")
        client = context.resources.warehouse.get_client()
        asked, failures = ask_providers(
            context, customer, client, analysis_day(config), config.force
        )
        aws_requests = asked["aws"].requests
        metadata = {
            "providers": MetadataValue.md(markdown(asked)),
            "recommendations": MetadataValue.int(sum(a.recommendations for a in asked.values())),
            "cost_explorer_requests": MetadataValue.int(aws_requests),
            "cost_explorer_cost_usd": MetadataValue.text(f"{request_cost(aws_requests):f}"),
            **{f"{p}_status": MetadataValue.text(a.status) for p, a in asked.items()},
        }
        if failures:
            raise Failure(
                "provider recommendations failed: " + "; ".join(failures), metadata=metadata
            )
        return MaterializeResult(metadata=metadata)

    return provider_recommendations
