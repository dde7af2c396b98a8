"""The `cost_pipelines` code location: assembles assets, job, schedule and resources."""

from __future__ import annotations

from dagster import Definitions

from cost_pipelines.assets import PROVIDER_SPECS, build_cost_assets
from cost_pipelines.assets.analytics import analytics_automation_sensor, build_analytics_assets
from cost_pipelines.assets.exchange_rates import (
    exchange_rates,
    exchange_rates_first_load,
    exchange_rates_job,
    exchange_rates_schedule,
)
from cost_pipelines.freshness import FRESHNESS_CHECKS, freshness_job, freshness_schedule
from cost_pipelines.partitions import customer_partitions
from cost_pipelines.resources.clickhouse import ClickHouseResource
from cost_pipelines.resources.customers import CustomersResource
from cost_pipelines.resources.ecb import EcbRatesResource
from cost_pipelines.schedules import build_collection_schedule, collection_job
from cost_pipelines.sensors import alerts_sensor

# Dynamic: the schedule keeps them equal to the customers file, no reload needed.
partitions = customer_partitions

defs = Definitions(
    assets=[*build_cost_assets(partitions), *build_analytics_assets(partitions), exchange_rates],
    asset_checks=FRESHNESS_CHECKS,
    jobs=[collection_job(partitions), freshness_job(), exchange_rates_job],
    schedules=[build_collection_schedule(), freshness_schedule(), exchange_rates_schedule],
    sensors=[exchange_rates_first_load, analytics_automation_sensor(), alerts_sensor()],
    resources={
        "warehouse": ClickHouseResource(),
        "customers": CustomersResource(),
        "ecb": EcbRatesResource(),
        # One client resource per provider, under the provider's own key.
        **{spec.provider: spec.resource for spec in PROVIDER_SPECS},
    },
)
