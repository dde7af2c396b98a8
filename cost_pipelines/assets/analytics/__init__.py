"""The analyses downstream of the provider assets: anomalies, month-end forecasts and budget
status, partitioned per customer like the provider assets and updated after them."""

from dagster import (
    AssetsDefinition,
    AssetSelection,
    AutomationConditionSensorDefinition,
    DefaultSensorStatus,
    PartitionsDefinition,
)

from cost_pipelines.assets.analytics.anomalies import build_anomalies_asset
from cost_pipelines.assets.analytics.budgets import build_budget_asset
from cost_pipelines.assets.analytics.forecasts import build_forecast_asset
from cost_pipelines.assets.analytics.store import GROUP

AUTOMATION_SENSOR = "analytics_automation"


def build_analytics_assets(partitions: PartitionsDefinition) -> list[AssetsDefinition]:
    """`cost_anomalies`, `cost_forecast` and `budget_status` over the customer partitions."""
    return [
        build_anomalies_asset(partitions),
        build_forecast_asset(partitions),
        build_budget_asset(partitions),
    ]


def analytics_automation_sensor() -> AutomationConditionSensorDefinition:
    """Evaluates the analyses' automation conditions every 30 s (running by default), so the
    daemon of `make run` starts them after each collection."""
    return AutomationConditionSensorDefinition(
        AUTOMATION_SENSOR,
        target=AssetSelection.groups(GROUP),
        default_status=DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=30,
    )
