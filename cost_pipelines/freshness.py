"""Freshness: every customer's costs from a provider were collected within the pair's poll
interval (plus two schedule ticks of grace). One check per provider asset, run every 15 minutes
by its own job, naming each overdue customer, when it was last collected and its interval.

No `from __future__ import annotations`: Dagster reads the check's context annotation at runtime."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetKey,
    AssetSelection,
    DagsterInstance,
    DefaultScheduleStatus,
    MetadataValue,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    asset_check,
    define_asset_job,
    in_process_executor,
    schedule,
)

from cost_pipelines.customers import CustomerBook
from cost_pipelines.providers import PROVIDERS
from cost_pipelines.resources.customers import CustomersResource
from cost_pipelines.runs import FRESHNESS
from cost_pipelines.schedules import Pair, last_success

if TYPE_CHECKING:  # what define_asset_job returns; Dagster does not export the name
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )

FRESHNESS_JOB = "check_freshness"
FRESHNESS_SCHEDULE = "check_freshness_every_15_minutes"
# A due pair is launched at the next tick (15 min) and may queue behind others: two ticks.
GRACE = timedelta(minutes=30)


def overdue_pairs(
    instance: DagsterInstance, book: CustomerBook, provider: str, now: datetime
) -> Iterator[str]:
    """One line per customer of this provider whose last collection is older than allowed."""
    for customer_id, customer in sorted(book.customers.items()):
        config = customer.providers.get(provider)
        if config is None:
            continue
        allowed = config.min_poll_interval + GRACE
        last = last_success(instance, Pair(customer_id, provider))
        if last is None:
            yield f"{customer_id}/{provider}: never collected (poll interval {allowed - GRACE})"
        elif now - last > allowed:
            age = now - last
            yield (
                f"{customer_id}/{provider}: last collected {last:%Y-%m-%d %H:%M} UTC, "
                f"{age.total_seconds() / 3600:.1f} h ago; poll interval "
                f"{config.min_poll_interval} + {GRACE} grace"
            )


def freshness_check(provider: str) -> AssetChecksDefinition:
    """The freshness check of `<provider>_costs`."""

    @asset_check(
        asset=AssetKey(f"{provider}_costs"),
        name=FRESHNESS,
        description=f"Every customer's {provider} costs were collected within the customer's "
        f"poll interval plus {GRACE} (two schedule ticks)",
    )
    def _fresh(
        context: AssetCheckExecutionContext, customers: CustomersResource
    ) -> AssetCheckResult:
        overdue = list(overdue_pairs(context.instance, customers.load(), provider, _now()))
        return AssetCheckResult(
            passed=not overdue,
            severity=AssetCheckSeverity.WARN,
            description=overdue[0] if overdue else "every customer is fresh",
            metadata={
                "overdue": MetadataValue.int(len(overdue)),
                "overdue_pairs": MetadataValue.md("\n".join(f"- {o}" for o in overdue) or "none"),
            },
        )

    return _fresh


def _now() -> datetime:
    return datetime.now(UTC)


FRESHNESS_CHECKS = [freshness_check(provider) for provider in PROVIDERS]


def freshness_job() -> "UnresolvedAssetJobDefinition":
    """The job that runs only the freshness checks (no collection)."""
    return define_asset_job(
        FRESHNESS_JOB,
        selection=AssetSelection.checks(*FRESHNESS_CHECKS),
        executor_def=in_process_executor,
        description="Check that every customer/provider pair was collected within its interval",
    )


def freshness_schedule() -> ScheduleDefinition:
    """Runs the freshness checks every 15 minutes, like the collection tick."""

    @schedule(
        name=FRESHNESS_SCHEDULE,
        cron_schedule="*/15 * * * *",
        execution_timezone="UTC",
        default_status=DefaultScheduleStatus.RUNNING,
        job_name=FRESHNESS_JOB,
    )
    def _every_15_minutes(context: ScheduleEvaluationContext) -> RunRequest:
        return RunRequest(run_key=f"freshness:{context.scheduled_execution_time:%Y-%m-%dT%H:%M}")

    return _every_15_minutes
