"""How current every collector is: last success per customer and provider, and the schedule."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter

from cost_api.control.runs import STATUS, LastSuccess
from cost_api.dependencies import CurrentKeyDep, CustomersDep, DagsterDep
from cost_api.errors import COLLECTION
from cost_api.schemas.collection import (
    CheckResultPublic,
    CollectorPublic,
    CollectorsStatus,
    Freshness,
    SchedulePublic,
)
from cost_pipelines.runs import WINDOW_CHECKS

# The schedule ticks every 15 minutes; a pair past its interval is collected at the next tick or,
# if that run is still queued behind others, the one after. Later than that is overdue.
DUE_GRACE = timedelta(minutes=30)

router = APIRouter(prefix="/api/v2/collectors", tags=["collection"], responses=COLLECTION)


def freshness(
    last_success: datetime | None, interval: timedelta, last_status: str | None, now: datetime
) -> Freshness:
    """fresh / due / overdue from the age of the last success; failing when the last run failed."""
    if last_status == "FAILURE":
        return "failing"
    if last_success is None:
        return "overdue"
    age = now - last_success
    if age <= interval:
        return "fresh"
    return "due" if age <= interval + DUE_GRACE else "overdue"


@router.get("/status", summary="Per customer and provider: last success, freshness, schedule")
async def get_collectors_status(
    key: CurrentKeyDep, dagster: DagsterDep, book: CustomersDep
) -> CollectorsStatus:
    customers = [c for cid, c in sorted(book.customers.items()) if key.may_read(cid)]
    pairs = [(c.id, provider) for c in customers for provider in sorted(c.providers)]
    successes, last_statuses, schedules, checks = await asyncio.gather(
        dagster.last_success_per_pair([c.id for c in customers]),
        dagster.last_finished_status(pairs),
        dagster.schedule_state(),
        dagster.latest_checks(pairs, WINDOW_CHECKS),
    )
    latest: dict[tuple[str, str], LastSuccess] = {(s.customer_id, s.provider): s for s in successes}
    now = datetime.now(UTC)
    collectors = []
    for customer in customers:
        for provider, config in sorted(customer.providers.items()):
            success = latest.get((customer.id, provider))
            last_status = last_statuses.get((customer.id, provider))
            interval = config.min_poll_interval
            collectors.append(
                CollectorPublic(
                    customer_id=customer.id,
                    provider=provider,
                    state=freshness(success.at if success else None, interval, last_status, now),
                    last_success_at=success.at if success else None,
                    last_success_task_id=success.run_id if success else None,
                    age_seconds=(now - success.at).total_seconds() if success else None,
                    poll_interval_seconds=interval.total_seconds(),
                    last_run_status=STATUS.get(last_status) if last_status else None,  # type: ignore[arg-type]
                    checks=[
                        CheckResultPublic(
                            name=c.name,
                            passed=c.passed,
                            status=c.status,
                            severity=c.severity,
                            description=c.description,
                            task_id=c.run_id,
                            evaluated_at=c.at,
                        )
                        for c in checks.get((customer.id, provider), [])
                    ],
                )
            )
    return CollectorsStatus(
        collectors=collectors,
        schedules=[
            SchedulePublic(
                name=s.name,
                cron=s.cron,
                timezone=s.timezone,
                running=s.running,
                next_tick=s.next_tick,
            )
            for s in schedules
        ],
        checked_at=now,
    )
