"""Collection control: trigger runs, follow one, list a customer's history (all via Dagster)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request, status

from cost_api.control.client import DagsterClient, RunNotFound
from cost_api.control.runs import DAGSTER_STATUSES, CollectionRun
from cost_api.dependencies import (
    CurrentKeyDep,
    CustomerIdDep,
    CustomersDep,
    DagsterDep,
    SettingsDep,
    check_customer_access,
    trigger_lock,
)
from cost_api.errors import COLLECTION, ErrorMessage, InvalidParameter
from cost_api.params import check_day
from cost_api.schemas.collection import (
    CollectionHistory,
    CollectionRunPublic,
    ErrorLinkPublic,
    FailurePublic,
    RunStatus,
    TaskPublic,
    TriggerAccepted,
    TriggerRequest,
)
from cost_api.settings import ApiSettings
from cost_pipelines.customers import CustomerBook
from cost_pipelines.providers import ProviderKey

RUN_ID_PATTERN = r"^[A-Za-z0-9\-]{1,64}$"
UNKNOWN_TASK = "no collection task with this id"
FOREIGN_CURSOR = "not a cursor of this history: pass the next_cursor of its previous page"

router = APIRouter(prefix="/api/v2/costs", tags=["collection"], responses=COLLECTION)


def status_url(request: Request, settings: ApiSettings, run_id: str) -> str:
    """Where a client follows a task: the configured public base URL, never the Host header."""
    path = request.app.url_path_for("get_collection_status", task_id=run_id)
    return settings.public_base_url.rstrip("/") + str(path)


def _backfill_or_manual(trigger: str) -> Literal["backfill", "manual"]:
    return "backfill" if trigger == "backfill" else "manual"


def run_public(run: CollectionRun, request: Request, settings: ApiSettings) -> CollectionRunPublic:
    failure = run.failure
    return CollectionRunPublic(
        task_id=run.run_id,
        customer_id=run.customer_id or "",
        provider=run.provider,
        trigger="scheduled" if run.trigger == "scheduled" else _backfill_or_manual(run.trigger),
        requested_by=run.requested_by,
        status=run.status,  # type: ignore[arg-type]  # STATUS maps onto RunStatus
        created_at=run.created_at,
        started_at=run.started_at,
        ended_at=run.ended_at,
        rows_written=run.rows_written,
        totals=run.totals,
        window_start=run.window_start,
        window_end=run.window_end,
        error=None
        if failure is None
        else FailurePublic(
            step=failure.step,
            message=failure.message,
            chain=[
                ErrorLinkPublic(error_class=e.error_class, message=e.message) for e in failure.chain
            ],
        ),
        status_url=status_url(request, settings, run.run_id),
        dagster_url=f"{settings.dagster_ui_url.rstrip('/')}/runs/{run.run_id}",
    )


def _providers_to_collect(book: CustomerBook, body: TriggerRequest) -> list[str]:
    customer = book.customers.get(body.customer_id)
    if customer is None:
        if body.customer_id in book.invalid:
            problems = "; ".join(book.invalid[body.customer_id])
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, problems)
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"customer {body.customer_id!r} is not in the customers file"
        )
    if body.providers is None:
        return sorted(customer.providers)
    missing = [p for p in dict.fromkeys(body.providers) if p not in customer.providers]
    if missing:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"customer {body.customer_id!r} has no {', '.join(missing)} configured "
            f"(it has: {', '.join(sorted(customer.providers)) or 'none'})",
        )
    return list(dict.fromkeys(body.providers))


async def _collect(
    dagster: DagsterClient,
    request: Request,
    customer_id: str,
    provider: str,
    requested_by: str,
    window: tuple[date, date] | None,
) -> tuple[str, str, bool]:
    """(run id, status, existing) for one pair: reuse an in-flight run of the same window (the
    trailing one, or the same explicit window), else launch one. An explicit window is never
    answered with a run of another window: it gets its own run, queued behind the pair's."""
    wanted = None if window is None else (window[0].isoformat(), window[1].isoformat())

    def same_window(runs: list[CollectionRun]) -> list[CollectionRun]:
        return [run for run in runs if run.requested_window == wanted]

    async with trigger_lock(request, customer_id, provider):
        in_flight = same_window(await dagster.find_in_flight(customer_id, provider))
        if in_flight:
            return in_flight[0].run_id, in_flight[0].status, True
        run_id = await dagster.launch_collection(customer_id, provider, requested_by, window)
        # Another API process may have launched the same pair at the same moment. Every process
        # sees both runs now and agrees the oldest wins; the others cancel their own.
        in_flight = same_window(await dagster.find_in_flight(customer_id, provider))
        winner = in_flight[0] if in_flight else None
        if winner is not None and winner.run_id != run_id:
            await dagster.cancel_run(run_id)
            return winner.run_id, winner.status, True
        return run_id, "queued", False


@router.post(
    "/trigger-collection",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Collect a customer's costs now (one Dagster run per provider)",
    responses={
        404: {"model": ErrorMessage, "description": "The customer is not in the customers file"},
        422: {"model": ErrorMessage, "description": "A provider the customer does not have"},
    },
)
async def trigger_collection(
    body: TriggerRequest,
    request: Request,
    key: CurrentKeyDep,
    dagster: DagsterDep,
    book: CustomersDep,
    settings: SettingsDep,
) -> TriggerAccepted:
    check_customer_access(body.customer_id, key)
    providers = _providers_to_collect(book, body)
    window = None
    check_day("start", body.start, "body")
    check_day("end", body.end, "body")
    if body.start and body.end:
        if (body.end - body.start).days > settings.max_period_days:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                f"window longer than {settings.max_period_days} days",
            )
        if body.end > datetime.now(UTC).date() + timedelta(days=1):
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "end is in the future")
        window = (body.start, body.end)
    ui = settings.dagster_ui_url.rstrip("/")
    # The customer is in the file (checked above); Dagster may not have its partition yet.
    await dagster.add_customer_partition(body.customer_id)
    tasks = []
    for provider in providers:
        run_id, run_status, existing = await _collect(
            dagster, request, body.customer_id, provider, key.name, window
        )
        tasks.append(
            TaskPublic(
                task_id=run_id,
                provider=provider,  # type: ignore[arg-type]  # validated against the book
                status=run_status,  # type: ignore[arg-type]
                existing=existing,
                status_url=status_url(request, settings, run_id),
                dagster_url=f"{ui}/runs/{run_id}",
            )
        )
    return TriggerAccepted(customer_id=body.customer_id, tasks=tasks)


@router.get(
    "/collection-status/{task_id}",
    summary="One collection run: status, times, rows written, totals, cause of failure",
    responses={404: {"model": ErrorMessage, "description": "No such task for this key"}},
)
async def get_collection_status(
    task_id: Annotated[str, Path(pattern=RUN_ID_PATTERN, description="A task id (run id)")],
    request: Request,
    key: CurrentKeyDep,
    dagster: DagsterDep,
    settings: SettingsDep,
) -> CollectionRunPublic:
    try:
        run = await dagster.get_run(task_id)
    except RunNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, UNKNOWN_TASK) from None
    # Another customer's run answers exactly like an unknown one: ids reveal nothing. The scope
    # comes from the run's tags, so a foreign run's event log is never read.
    if not run.customer_id or not key.may_read(run.customer_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, UNKNOWN_TASK)
    if run.dagster_status == "FAILURE":
        run.failure = await dagster.failure_of(task_id)
    return run_public(run, request, settings)


async def _check_cursor(
    dagster: DagsterClient, cursor: str, customer_id: str, provider: str | None
) -> None:
    """A cursor is the last run of a page of this history: an unknown run, or another customer's
    or provider's, would page through an unrelated list (Dagster ignores it). 422 for both,
    alike: the answer tells nothing about other customers' runs."""
    try:
        anchor = await dagster.get_run(cursor)
    except RunNotFound:
        anchor = None
    if (
        anchor is None
        or anchor.customer_id != customer_id
        or (provider is not None and anchor.provider != provider)
    ):
        raise InvalidParameter("cursor", FOREIGN_CURSOR, cursor)


@router.get(
    "/{customer_id}/collection-history",
    summary="A customer's collection runs, newest first, scheduled and manual",
    description="Items carry `error: null`; a failed run's cause is on its `status_url` "
    "(collection-status), which reads it from the run's event log.",
)
async def get_collection_history(
    customer_id: CustomerIdDep,
    request: Request,
    dagster: DagsterDep,
    settings: SettingsDep,
    provider: ProviderKey | None = None,
    run_status: Annotated[RunStatus | None, Query(alias="status")] = None,
    cursor: Annotated[
        str | None,
        Query(pattern=RUN_ID_PATTERN, description="`next_cursor` of the previous page"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> CollectionHistory:
    statuses = DAGSTER_STATUSES[run_status] if run_status else None
    if cursor is not None:
        await _check_cursor(dagster, cursor, customer_id, provider)
    page = await dagster.list_runs(customer_id, provider, statuses, cursor, limit)
    return CollectionHistory(
        customer_id=customer_id,
        data=[run_public(run, request, settings) for run in page.runs],
        count=page.total,
        next_cursor=page.next_cursor,
    )
