"""Publishing an analysis: its rows under a new run id, then the customer's pointer to that run
(`analytics_runs`), so readers see the previous result or the new one, never a mix. Also what
every analysis asset shares: its config, its dependencies and its automation condition."""

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from clickhouse_connect.driver.client import Client
from dagster import (
    AssetKey,
    AssetsDefinition,
    AutomationCondition,
    Config,
    Failure,
    PartitionsDefinition,
    asset,
)
from pydantic import Field

from cost_pipelines.providers import PROVIDERS
from cost_pipelines.warehouse.schema import ANALYTICS_RUNS_TABLE

GROUP = "analytics"
PROVIDER_ASSETS = [AssetKey(f"{provider}_costs") for provider in PROVIDERS]
# After each update of a provider asset the analyses it feeds run again. Eager without "no
# dependency missing": a customer collected from two providers never has the other two.
AUTOMATION = AutomationCondition.eager().without(~AutomationCondition.any_deps_missing())


def analysis_asset(
    name: str,
    partitions: PartitionsDefinition,
    description: str,
    deps: Sequence[AssetKey] = PROVIDER_ASSETS,
    resources: frozenset[str] = frozenset({"warehouse"}),
) -> Callable[[Callable[..., Any]], AssetsDefinition]:
    """The decorator every analysis asset is made with: its group, customer partitions and
    automation condition; downstream of the provider assets unless `deps` says otherwise."""
    return asset(
        name=name,
        group_name=GROUP,
        deps=list(deps),
        partitions_def=partitions,
        automation_condition=AUTOMATION,
        kinds={"python", "clickhouse"},
        required_resource_keys=set(resources),
        description=description,
    )


class AnalysisConfig(Config):
    """Optional run config: analyse as of the morning of another day (a backfill, a test)."""

    today: str | None = Field(default=None, pattern=r"^\d{4}-\d{2}-\d{2}$")


def analysis_day(config: AnalysisConfig) -> date:
    """The open day: everything before it is complete, it and later days are forecast."""
    if config.today is None:
        return datetime.now(UTC).date()
    try:
        return date.fromisoformat(config.today)
    except ValueError as exc:
        raise Failure(f"run config today is not a valid date: {exc}") from None


def publish(
    client: Client,
    *,
    table: str,
    asset: str,
    customer_id: str,
    as_of: date,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
) -> str:
    """Insert the rows under a new run id, then point the customer's `asset` at it."""
    run_id = str(uuid.uuid4())
    computed_at = datetime.now(UTC)
    if rows:
        client.insert(
            table,
            [[customer_id, *row, run_id, computed_at] for row in rows],
            column_names=["customer_id", *columns, "run_id", "computed_at"],
        )
    client.insert(
        ANALYTICS_RUNS_TABLE,
        [[customer_id, asset, as_of, run_id, computed_at]],
        column_names=["customer_id", "asset", "as_of", "run_id", "computed_at"],
    )
    return run_id


def history_start(today: date, days: int) -> date:
    return today - timedelta(days=days)
