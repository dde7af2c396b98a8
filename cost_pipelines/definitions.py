"""The `cost_pipelines` code location: assembles assets, job, schedule and resources."""

from __future__ import annotations

import warnings

from dagster import Definitions

from cost_pipelines.assets import PROVIDER_SPECS, build_cost_assets
from cost_pipelines.assets.analytics import analytics_automation_sensor, build_analytics_assets
from cost_pipelines.assets.exchange_rates import (
    exchange_rates,
    exchange_rates_first_load,
    exchange_rates_job,
    exchange_rates_schedule,
)
from cost_pipelines.assets.recommendations import build_recommendation_assets
from cost_pipelines.freshness import FRESHNESS_CHECKS, freshness_job, freshness_schedule
from cost_pipelines.logs import configure_logging
from cost_pipelines.partitions import customer_partitions
from cost_pipelines.resources.clickhouse import ClickHouseResource
from cost_pipelines.resources.customers import CustomersResource
from cost_pipelines.resources.ecb import EcbRatesResource
from cost_pipelines.retention import retention_job, retention_schedule
from cost_pipelines.schedules import build_collection_schedule, collection_job
from cost_pipelines.sensors import alerts_sensor

# The code server and every run worker load this module: their records in LOG_FORMAT (JSON off a
# terminal). A run's own records (context.log, Dagster's events) reach the same format through
# the instance's handler (cost_pipelines.logs.DAGSTER_PYTHON_LOGS in dagster.yaml).
configure_logging()
# Dagster warns at every run that handlers from dagster.yaml are a beta feature (known, and
# pinned with Dagster's release: tests/pipelines/test_run_logs.py shows they still work).
warnings.filterwarnings("ignore", message="Handling yaml-defined logging configuration")
# Dynamic: the schedule keeps them equal to the customers file, no reload needed.
partitions = customer_partitions

defs = Definitions(
    assets=[
        *build_cost_assets(partitions),
        *build_analytics_assets(partitions),
        *build_recommendation_assets(partitions),
        exchange_rates,
    ],
    asset_checks=FRESHNESS_CHECKS,
    jobs=[collection_job(partitions), freshness_job(), exchange_rates_job, retention_job],
    schedules=[
        build_collection_schedule(),
        freshness_schedule(),
        exchange_rates_schedule,
        retention_schedule,
    ],
    sensors=[exchange_rates_first_load, analytics_automation_sensor(), alerts_sensor()],
    resources={
        "warehouse": ClickHouseResource(),
        "customers": CustomersResource(),
        "ecb": EcbRatesResource(),
        # One client resource per provider, under the provider's own key.
        **{spec.provider: spec.resource for spec in PROVIDER_SPECS},
    },
)
