"""The 15-minute tick: launch one run per (customer, provider) pair that is due, never a second
one for a pair already queued or running, and never let one customer's trouble stop the rest."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from dagster import (
    AssetKey,
    AssetRecordsFilter,
    AssetSelection,
    DagsterInstance,
    DagsterRunStatus,
    DefaultScheduleStatus,
    PartitionsDefinition,
    RunRequest,
    RunsFilter,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SkipReason,
    define_asset_job,
    in_process_executor,
    schedule,
)

from cost_pipelines.assets.collection import GROUP
from cost_pipelines.customers import CustomerBook, ProviderConfig
from cost_pipelines.partitions import sync_customer_partitions
from cost_pipelines.resources.customers import CustomersResource
from cost_pipelines.runs import IN_FLIGHT, PAIR_TAG, pair_tag_value

if TYPE_CHECKING:  # what define_asset_job returns; Dagster does not export the name
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )

JOB_NAME = "collect_costs"
SCHEDULE_NAME = "collect_costs_every_15_minutes"
CRON = "*/15 * * * *"
# Deployments may tick more or less often (and a test every minute); pairs stay rate-limited by
# their own poll interval whatever the tick.
CRON_ENV = "COLLECTION_SCHEDULE_CRON"
_CRON_FIELD = re.compile(r"[0-9A-Za-z*/,\-]+")
MAX_ERRORS_SHOWN = 5  # a skip reason is one line in the UI; every error is logged anyway
IN_FLIGHT_STATUSES = [DagsterRunStatus(name) for name in IN_FLIGHT]
# After a failure (bad credentials, a provider outage) a pair waits 15 min, then 30, 60, ... but
# never longer than its poll interval, so a broken pair is not re-launched (and, on AWS, billed)
# every tick. Cancelled runs say nothing about the pair's health and are ignored.
FIRST_FAILURE_BACKOFF = timedelta(minutes=15)
_FINISHED = [DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE]
_FAILURES_COUNTED = 12  # 15 min * 2**11 is weeks: beyond any poll interval, the cap applies


@dataclass(frozen=True)
class Pair:
    """One customer's collection from one provider."""

    customer_id: str
    provider: str

    @property
    def asset_key(self) -> AssetKey:
        return AssetKey(f"{self.provider}_costs")

    @property
    def tags(self) -> dict[str, str]:
        return {"customer_id": self.customer_id, "provider": self.provider}


def last_success(instance: DagsterInstance, pair: Pair) -> datetime | None:
    """When this pair's asset partition was last materialized (= collected successfully)."""
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=pair.asset_key, asset_partitions=[pair.customer_id]), limit=1
    ).records
    return datetime.fromtimestamp(records[0].timestamp, UTC) if records else None


def in_flight(instance: DagsterInstance, pair: Pair) -> bool:
    """A run for the pair is queued, starting or running (scheduled or manual)."""
    return bool(instance.get_runs(RunsFilter(tags=pair.tags, statuses=IN_FLIGHT_STATUSES), limit=1))


def failure_backoff(
    instance: DagsterInstance, pair: Pair, poll_interval: timedelta
) -> tuple[datetime, timedelta] | None:
    """When the pair's newest finished run failed: when that was, and how long to wait after it
    (doubling with each consecutive failure, capped at the poll interval)."""
    records = instance.get_run_records(
        RunsFilter(tags=pair.tags, statuses=_FINISHED), limit=_FAILURES_COUNTED
    )
    failures = 0
    for record in records:
        if record.dagster_run.status != DagsterRunStatus.FAILURE:
            break
        failures += 1
    if not failures:
        return None
    newest = records[0]
    if newest.end_time is not None:
        failed_at = datetime.fromtimestamp(newest.end_time, UTC)
    else:  # a run marked failed without a failure event: its last update is when it failed
        stamp = newest.update_timestamp
        failed_at = stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)
    return failed_at, min(poll_interval, FIRST_FAILURE_BACKOFF * 2 ** (failures - 1))


def is_due(instance: DagsterInstance, pair: Pair, config: ProviderConfig, now: datetime) -> bool:
    if in_flight(instance, pair):
        return False
    last = last_success(instance, pair)
    if last is not None and now - last < config.min_poll_interval:
        return False
    backoff = failure_backoff(instance, pair, config.min_poll_interval)
    return backoff is None or now - backoff[0] >= backoff[1]


def due_run_requests(
    instance: DagsterInstance, book: CustomerBook, now: datetime, log: object | None = None
) -> Iterator[RunRequest]:
    """One RunRequest per due pair; a pair whose check fails is logged and skipped."""
    for customer_id, customer in sorted(book.customers.items()):
        for provider, config in sorted(customer.providers.items()):
            pair = Pair(customer_id, provider)
            try:
                due = is_due(instance, pair, config, now)
            except Exception as exc:  # one pair's trouble must not stop the others
                _warn(log, f"{customer_id}/{provider}: could not decide if due: {exc!r}")
                continue
            if due:
                yield RunRequest(
                    run_key=f"{customer_id}:{provider}:{now:%Y-%m-%dT%H:%M}",
                    partition_key=customer_id,
                    asset_selection=[pair.asset_key],
                    tags={
                        **pair.tags,
                        "trigger": "schedule",
                        # The run queue lets one run per pair go at a time (dagster.yaml).
                        PAIR_TAG: pair_tag_value(customer_id, provider),
                    },
                )


def skip_message(book: CustomerBook, now: datetime) -> str:
    """Why a tick launched nothing, with the customers file's problems so the UI shows them."""
    message = f"nothing due at {now:%Y-%m-%d %H:%M} UTC"
    if not book.errors:
        return message
    shown = "; ".join(book.errors[:MAX_ERRORS_SHOWN])
    more = len(book.errors) - MAX_ERRORS_SHOWN
    return f"{message}; customers file: {shown}" + (f" (and {more} more)" if more > 0 else "")


def _warn(log: object | None, message: str) -> None:
    warning = getattr(log, "warning", None)
    if callable(warning):
        warning(message)


def collection_job(partitions: PartitionsDefinition) -> UnresolvedAssetJobDefinition:
    """`collect_costs`: one customer's costs from the selected providers (every run selects its
    assets: the schedule one per pair, the API the pairs it was asked for)."""
    return define_asset_job(
        JOB_NAME,
        selection=AssetSelection.groups(GROUP),
        partitions_def=partitions,
        # One asset per run: a step process of its own would only add seconds.
        executor_def=in_process_executor,
        description="Collect one customer's costs from the selected providers",
    )


def collection_cron(environ: Mapping[str, str] = os.environ) -> str:
    """The tick's cron expression: `COLLECTION_SCHEDULE_CRON`, else every 15 minutes."""
    cron = environ.get(CRON_ENV, "").strip() or CRON
    fields = cron.split()
    if len(fields) != 5 or not all(_CRON_FIELD.fullmatch(f) for f in fields):
        raise ValueError(
            f"{CRON_ENV}={cron!r} is not a cron expression of five fields (e.g. {CRON!r})"
        )
    return cron


def build_collection_schedule(cron: str | None = None) -> ScheduleDefinition:
    """The schedule over the `collect_costs` job, running by default."""

    @schedule(
        name=SCHEDULE_NAME,
        cron_schedule=cron or collection_cron(),
        execution_timezone="UTC",
        default_status=DefaultScheduleStatus.RUNNING,
        job_name=JOB_NAME,
        description="Every 15 minutes (or COLLECTION_SCHEDULE_CRON), re-read the customers "
        "file (its customers are the partitions), then collect each customer/provider pair "
        "whose minimum poll "
        "interval has passed since its last successful collection; after failures a pair waits "
        "15 min, doubling per consecutive failure, at most its poll interval",
    )
    def collect_costs_every_15_minutes(
        context: ScheduleEvaluationContext, customers: CustomersResource
    ) -> Iterator[RunRequest | SkipReason]:
        book = customers.load()
        for error in book.errors:
            context.log.warning(f"skipped: {error}")
        # Before the run requests: a customer new in the file is collected at this very tick.
        changes = sync_customer_partitions(context.instance, book)
        if changes.describe():
            context.log.info(changes.describe())
        now = context.scheduled_execution_time or datetime.now(UTC)
        requests = list(due_run_requests(context.instance, book, now, context.log))
        if not requests:
            yield SkipReason(skip_message(book, now))
        yield from requests

    return collect_costs_every_15_minutes
