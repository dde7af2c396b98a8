"""The `cost_pipelines` code location: assembles assets, job, schedule and resources."""

from __future__ import annotations

from dagster import AssetSelection, Definitions, define_asset_job, in_process_executor

from cost_pipelines.assets import build_cost_assets
from cost_pipelines.assets.collection import GROUP, CustomersResource, customer_partitions
from cost_pipelines.customers import load_customers_from_env
from cost_pipelines.resources.aws import AwsResource
from cost_pipelines.resources.azure import AzureResource
from cost_pipelines.resources.clickhouse import ClickHouseResource
from cost_pipelines.resources.gcp import GcpResource
from cost_pipelines.resources.vultr import VultrResource
from cost_pipelines.schedules import build_collection_schedule

customer_book = load_customers_from_env()
partitions = customer_partitions(customer_book)

collect_costs = define_asset_job(
    "collect_costs",
    selection=AssetSelection.groups(GROUP),
    partitions_def=partitions,
    # One asset per run: a step process of its own would only add seconds.
    executor_def=in_process_executor,
    description="Collect one customer's costs from the selected providers",
)

defs = Definitions(
    assets=build_cost_assets(partitions),
    jobs=[collect_costs],
    schedules=[build_collection_schedule(collect_costs)],
    resources={
        "warehouse": ClickHouseResource(),
        "customers": CustomersResource(),
        # One client resource per provider, under the key its ProviderSpec names.
        "aws": AwsResource(),
        "azure": AzureResource(),
        "gcp": GcpResource(),
        "vultr": VultrResource(),
    },
)
