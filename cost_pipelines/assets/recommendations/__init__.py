"""Recommendations downstream of the provider cost assets: what the providers themselves advise
buying (`provider_recommendations`) and what our stored costs show is worth stopping or looking
at (`cost_recommendations`), partitioned per customer like the analyses and updated after them."""

from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    MaterializeResult,
    MetadataValue,
    PartitionsDefinition,
)

from cost_pipelines.assets.analytics.store import AnalysisConfig, analysis_asset, analysis_day
from cost_pipelines.assets.recommendations.model import OWN_ASSET, publish_recommendations
from cost_pipelines.assets.recommendations.own import own_recommendations
from cost_pipelines.assets.recommendations.providers import build_provider_recommendations_asset
from cost_pipelines.customers import RecommendationSettings


def build_own_recommendations_asset(partitions: PartitionsDefinition) -> AssetsDefinition:
    @analysis_asset(
        OWN_ASSET,
        partitions,
        "Our own recommendations from the stored costs, with their evidence: idle resources "
        "(cost without usage or compute), commitments used below a threshold, services "
        "outgrowing the customer's total",
        resources=frozenset({"warehouse", "customers"}),
    )
    def cost_recommendations(
        context: AssetExecutionContext, config: AnalysisConfig
    ) -> MaterializeResult:  # type: ignore[type-arg]
        customer_id = context.partition_key
        today = analysis_day(config)
        customer = context.resources.customers.load().customers.get(customer_id)
        settings = customer.recommendations if customer else RecommendationSettings()
        client = context.resources.warehouse.get_client()
        found = own_recommendations(client, customer_id, settings, today)
        publish_recommendations(
            client, asset=OWN_ASSET, customer_id=customer_id, as_of=today, found=found
        )
        kinds = sorted({r.kind for r in found})
        return MaterializeResult(
            metadata={
                "recommendations": MetadataValue.int(len(found)),
                "by_kind": MetadataValue.json(
                    {k: sum(1 for r in found if r.kind == k) for k in kinds}
                ),
                "today": MetadataValue.text(today.isoformat()),
            }
        )

    return cost_recommendations


def build_recommendation_assets(partitions: PartitionsDefinition) -> list[AssetsDefinition]:
    """`provider_recommendations` and `cost_recommendations` over the customer partitions."""
    return [
        build_provider_recommendations_asset(partitions),
        build_own_recommendations_asset(partitions),
    ]
