"""Cost assets: one per provider, partitioned per customer, built from the provider specs."""

from __future__ import annotations

from dagster import AssetsDefinition, PartitionsDefinition

from cost_pipelines.assets.aws import AWS
from cost_pipelines.assets.azure import AZURE
from cost_pipelines.assets.collection import ProviderSpec, build_cost_asset
from cost_pipelines.assets.gcp import GCP
from cost_pipelines.assets.vultr import VULTR

PROVIDER_SPECS: tuple[ProviderSpec, ...] = (AWS, AZURE, GCP, VULTR)


def build_cost_assets(partitions: PartitionsDefinition) -> list[AssetsDefinition]:
    """`aws_costs`, `azure_costs`, `gcp_costs`, `vultr_costs` over the customer partitions."""
    return [build_cost_asset(spec, partitions) for spec in PROVIDER_SPECS]
