"""What clients of collection control see: triggers, runs, history and collectors."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cost_api.schemas.costs import Money
from cost_pipelines.customers import CUSTOMER_ID_MAX_LENGTH
from cost_pipelines.providers import ProviderKey

RunStatus = Literal["queued", "starting", "running", "canceling", "success", "failure", "canceled"]
# backfill: a run of a Dagster backfill (`make run` backfills the demo's history at its first start)
Trigger = Literal["scheduled", "manual", "backfill"]
Freshness = Literal["fresh", "due", "overdue", "failing"]


class TriggerRequest(BaseModel):
    """Collect one customer's costs now, for some or all of its providers."""

    model_config = ConfigDict(extra="forbid")

    customer_id: str = Field(max_length=CUSTOMER_ID_MAX_LENGTH, examples=["acme"])
    providers: list[ProviderKey] | None = Field(
        default=None, min_length=1, description="Default: every provider the customer has"
    )
    start: date | None = Field(default=None, description="First day to collect (UTC)")
    end: date | None = Field(default=None, description="Day after the last day (exclusive)")

    @model_validator(mode="after")
    def _window(self) -> TriggerRequest:
        if (self.start is None) != (self.end is None):
            raise ValueError("start and end go together: give both or neither")
        if self.start and self.end and self.end <= self.start:
            raise ValueError("end must be after start (end is exclusive)")
        return self


class TaskPublic(BaseModel):
    """One collection run started (or found running) for one provider."""

    task_id: str = Field(description="The Dagster run id")
    provider: ProviderKey
    status: RunStatus
    existing: bool = Field(description="True when a queued or running run was reused")
    status_url: str
    dagster_url: str


class TriggerAccepted(BaseModel):
    customer_id: str
    tasks: list[TaskPublic]


class ErrorLinkPublic(BaseModel):
    error_class: str | None
    message: str


class FailurePublic(BaseModel):
    """Why a run failed, as Dagster recorded it (secrets removed)."""

    step: str | None = Field(description="The asset step that failed")
    message: str = Field(description="The innermost cause, usually the provider's own words")
    chain: list[ErrorLinkPublic] = Field(description="Every exception, outermost first")


class CollectionRunPublic(BaseModel):
    """A collection run of one customer/provider pair: scheduled, manual or of a backfill."""

    task_id: str
    customer_id: str
    provider: str | None
    trigger: Trigger
    requested_by: str | None = Field(
        description="The API key name of a manual trigger (`make run` for its own runs)"
    )
    status: RunStatus
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    rows_written: int | None = Field(description="Cost lines written; null until it succeeds")
    totals: dict[str, Money] = Field(description="BilledCost of the window per currency")
    window_start: str | None
    window_end: str | None = Field(description="Exclusive")
    error: FailurePublic | None = Field(
        description="Why a failed run failed: given by collection-status; always null in "
        "collection-history (follow the item's status_url)"
    )
    status_url: str
    dagster_url: str


class CollectionHistory(BaseModel):
    customer_id: str
    data: list[CollectionRunPublic]
    count: int = Field(description="Runs matching the filters, all pages")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page")


class CheckResultPublic(BaseModel):
    """The newest evaluation of one asset check of this customer's costs from this provider."""

    name: str = Field(description="focus_conformance or reconciles_with_provider")
    passed: bool
    status: str = Field(description="Dagster's execution status: SUCCEEDED, FAILED, ...")
    severity: str | None = Field(description="ERROR or WARN")
    description: str | None = Field(description="What failed: customer, provider, account, day")
    task_id: str = Field(description="The collection run that evaluated it")
    evaluated_at: datetime


class CollectorPublic(BaseModel):
    """How current one provider's costs of one customer are."""

    customer_id: str
    provider: str
    state: Freshness = Field(
        description="fresh: collected within the poll interval; due: past it, the schedule "
        "collects it within a tick or two; overdue: later than that or never; failing: the "
        "latest finished run failed"
    )
    last_success_at: datetime | None
    last_success_task_id: str | None
    age_seconds: float | None
    poll_interval_seconds: float
    last_run_status: RunStatus | None
    checks: list[CheckResultPublic] = Field(
        description="The newest result of each check on the window the collection wrote"
    )


class SchedulePublic(BaseModel):
    name: str
    cron: str
    timezone: str
    running: bool
    next_tick: datetime | None


class CollectorsStatus(BaseModel):
    collectors: list[CollectorPublic]
    schedules: list[SchedulePublic]
    checked_at: datetime
