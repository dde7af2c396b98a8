"""The daily retention job: deletes the superseded loads older than the deployment's retention
(COST_RETENTION_DAYS, default 90) and never a current one (see warehouse/retention.py). Its runs,
with what each deleted, are in the Dagster UI under the job `enforce_cost_retention`."""

from datetime import UTC, datetime, timedelta

from dagster import (
    DefaultScheduleStatus,
    MetadataValue,
    OpExecutionContext,
    Output,
    ScheduleDefinition,
    in_process_executor,
    job,
    op,
)

from cost_pipelines.resources.clickhouse import ClickHouseResource
from cost_pipelines.warehouse import retention

JOB_NAME = "enforce_cost_retention"
SCHEDULE_NAME = "enforce_cost_retention_daily"
CRON = "17 3 * * *"  # daily, at a quiet hour (UTC)


@op(
    name="delete_superseded_loads",
    description="Deletes the lines and pointers of loads superseded before now minus "
    "COST_RETENTION_DAYS, after moving the earliest as_of instant to that cutoff",
)
def delete_superseded_loads(
    context: OpExecutionContext, warehouse: ClickHouseResource
) -> Output[None]:
    settings = warehouse.settings()
    cutoff = datetime.now(UTC) - timedelta(days=settings.cost_retention_days)
    result = retention.enforce(warehouse.get_client(), cutoff, settings.clickhouse_cluster)
    context.log.info(
        f"retention {settings.cost_retention_days} days: deleted {result.superseded_lines} lines "
        f"and {result.superseded_pointers} pointers of loads superseded before {result.cutoff}"
    )
    return Output(
        None,
        metadata={
            "retention_days": MetadataValue.int(settings.cost_retention_days),
            "cutoff": MetadataValue.text(result.cutoff.isoformat()),
            "earliest_as_of": MetadataValue.text(result.horizon.isoformat()),
            "superseded_lines_deleted": MetadataValue.int(result.superseded_lines),
            "superseded_pointers_deleted": MetadataValue.int(result.superseded_pointers),
        },
    )


@job(
    name=JOB_NAME,
    executor_def=in_process_executor,
    description="Deletes superseded loads past COST_RETENTION_DAYS; current loads and the "
    "restatement ledger stay",
)
def retention_job() -> None:
    delete_superseded_loads()


retention_schedule = ScheduleDefinition(
    name=SCHEDULE_NAME,
    job=retention_job,
    cron_schedule=CRON,
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
    description="Every day at 03:17 UTC",
)
