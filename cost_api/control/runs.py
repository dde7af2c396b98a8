"""Collection runs as the API shows them, parsed from Dagster's GraphQL answers."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from cost_pipelines.runs import IN_FLIGHT as IN_FLIGHT  # re-exported for control.client

# Dagster run status -> the status users see.
STATUS = {
    "QUEUED": "queued",
    "NOT_STARTED": "queued",
    "STARTING": "starting",
    "STARTED": "running",
    "MANAGED": "running",
    "SUSPENDED": "running",
    "CANCELING": "canceling",
    "SUCCESS": "success",
    "FAILURE": "failure",
    "CANCELED": "canceled",
}
DAGSTER_STATUSES: dict[str, list[str]] = {}
for _dagster, _ours in STATUS.items():
    DAGSTER_STATUSES.setdefault(_ours, []).append(_dagster)
MAX_CAUSE_LENGTH = 2000
# Tags of a run launched for an explicit window: it is a backfill, never the trailing run.
WINDOW_START_TAG = "window_start"
WINDOW_END_TAG = "window_end"


@dataclass(frozen=True)
class ErrorLink:
    """One exception in a failure's chain, outermost first."""

    error_class: str | None
    message: str


@dataclass(frozen=True)
class RunFailure:
    """Why a run failed, as Dagster recorded it (already scrubbed of secrets)."""

    step: str | None
    message: str
    chain: list[ErrorLink]


@dataclass
class CollectionRun:
    """One collection run of one customer/provider pair."""

    run_id: str
    dagster_status: str
    status: str
    customer_id: str | None
    provider: str | None
    trigger: str
    requested_by: str | None
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    rows_written: int | None = None
    totals: dict[str, Decimal] = field(default_factory=dict)
    window_start: str | None = None
    window_end: str | None = None
    failure: RunFailure | None = None
    # The explicit window a trigger asked for (tags), None for the trailing window.
    requested_window: tuple[str, str] | None = None


@dataclass(frozen=True)
class RunPage:
    runs: list[CollectionRun]
    total: int
    next_cursor: str | None


@dataclass(frozen=True)
class LastSuccess:
    """The newest materialization of one provider asset for one customer."""

    customer_id: str
    provider: str
    run_id: str
    at: datetime


@dataclass(frozen=True)
class CheckResult:
    """The newest evaluation of one asset check for one customer and provider."""

    name: str
    passed: bool
    status: str  # SUCCEEDED, FAILED, IN_PROGRESS, SKIPPED, EXECUTION_FAILED
    severity: str | None
    description: str | None
    run_id: str
    at: datetime


@dataclass(frozen=True)
class ScheduleInfo:
    name: str
    cron: str
    timezone: str
    running: bool
    next_tick: datetime | None


def _time(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value else None


def _trigger(tags: dict[str, str]) -> str:
    if tags.get("trigger") == "manual":
        return "manual"
    if tags.get("trigger") == "schedule" or "dagster/schedule_name" in tags:
        return "scheduled"
    return tags.get("trigger") or "manual"


def parse_run(raw: dict[str, Any]) -> CollectionRun:
    """A Run object of RUN_FIELDS -> CollectionRun; metadata summed over its materializations."""
    tags = {tag["key"]: tag["value"] for tag in raw["tags"]}
    run = CollectionRun(
        run_id=raw["runId"],
        dagster_status=raw["status"],
        status=STATUS.get(raw["status"], raw["status"].lower()),
        customer_id=tags.get("customer_id") or tags.get("dagster/partition"),
        provider=tags.get("provider"),
        trigger=_trigger(tags),
        requested_by=tags.get("requested_by"),
        created_at=datetime.fromtimestamp(raw["creationTime"], UTC),
        started_at=_time(raw.get("startTime")),
        ended_at=_time(raw.get("endTime")),
    )
    if WINDOW_START_TAG in tags and WINDOW_END_TAG in tags:
        run.requested_window = (tags[WINDOW_START_TAG], tags[WINDOW_END_TAG])
    for materialization in raw.get("assetMaterializations") or []:
        _add_metadata(run, materialization["metadataEntries"])
    return run


def _add_metadata(run: CollectionRun, entries: list[dict[str, Any]]) -> None:
    for entry in entries:
        label = entry["label"]
        if label == "rows_written" and entry.get("intRepr") is not None:
            run.rows_written = (run.rows_written or 0) + int(entry["intRepr"])
        elif label == "totals" and entry.get("jsonString"):
            for currency, amount in _totals(entry["jsonString"]).items():
                run.totals[currency] = run.totals.get(currency, Decimal(0)) + amount
        elif label in ("window_start", "window_end") and entry.get("text"):
            setattr(run, label, entry["text"])


def _totals(document: str) -> dict[str, Decimal]:
    try:
        loaded = json.loads(document)
        return {str(k): Decimal(str(v)) for k, v in loaded.items()}
    except (ValueError, AttributeError, InvalidOperation):
        return {}  # a malformed totals entry must not hide the rest of the run


def parse_failure(events: list[dict[str, Any]], redact: Callable[[str], str]) -> RunFailure | None:
    """The first step failure's error chain; else the run failure's; texts scrubbed."""
    step_failures = [e for e in events if e["__typename"] == "ExecutionStepFailureEvent"]
    run_failures = [e for e in events if e["__typename"] == "RunFailureEvent"]
    if not step_failures and not run_failures:
        return None
    event = (step_failures or run_failures)[0]
    error = event.get("error")
    chain: list[ErrorLink] = []
    if error:
        chain.append(_link(error, redact))
        chain.extend(_link(link["error"], redact) for link in error.get("errorChain") or [])
    # The innermost exception is usually the provider's own words: lead with it.
    message = chain[-1].message if chain else redact(event.get("message") or "")
    return RunFailure(step=event.get("stepKey"), message=message, chain=chain)


def _link(error: dict[str, Any], redact: Callable[[str], str]) -> ErrorLink:
    error_class = error.get("className")
    message = (error.get("message") or "").strip()
    # Dagster prefixes "module.path.ClassName: "; the class is reported beside the message.
    if error_class:
        head, sep, rest = message.partition(": ")
        if sep and head.rsplit(".", 1)[-1] == error_class:
            message = rest
    return ErrorLink(error_class=error_class, message=redact(message)[:MAX_CAUSE_LENGTH])
