"""The first minute of `make run`: collect at once instead of at the next quarter hour, and on
the first start of a DATA_DIR with the sandbox, backfill the demo's whole history.

Every start, once Dagster answers, `make run` evaluates the collection schedule's next tick
(Dagster's dry run of the schedule, which also syncs the customer partitions with the customers
file) and launches the runs it asks for at once: on a first start every pair, later only the
pairs due by that tick (at most 15 minutes early; the tick itself then finds them collected or
in flight and launches nothing twice). The runs carry the schedule's tags (the pair's run
queue, `trigger`) and `requested_by: make run`.

On the first start with the sandbox (no `demo-history.json` in DATA_DIR yet), it also launches
one Dagster backfill per provider of the demo customer (the UI's Backfills tab shows them) over
the demo's history: from the 1st of the month twelve months back to today, 13 calendar months,
so `trends?group_by=month&days=365` has every month within minutes. Each backfill's run is a
collection of that pair over that explicit window (run config start/end, the window tags), in
the pair's run queue behind the pair's first collection. The file records the backfills, so
later starts never launch them again.

Nothing here stops `make run`: when Dagster cannot be asked (its code location does not load),
it says so and the schedule collects at its next tick."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from cost_api.control.client import DagsterClient, RequestedRun
from cost_api.errors import ServiceUnavailable
from cost_local.sandbox.aws import reset_moto, seed_cost_explorer
from cost_local.sandbox.demo import CUSTOMER_ID as DEMO_CUSTOMER
from cost_local.sandbox.demo import accounts
from cost_local.sandbox.main import bills_until
from cost_pipelines.assets.collection import trailing_window
from cost_pipelines.customers import AwsConfig, load_customers
from cost_pipelines.schedules import SCHEDULE_NAME

HISTORY_MONTHS = 13
MARKER_FILE_NAME = "demo-history.json"
LOCATION = "cost_pipelines"  # workspace.yaml's location name
REQUESTED_BY = "make run"
# Dagster's webserver answers before its code location has loaded: ask again until it has.
READY_TIMEOUT_S = 180.0
RETRY_S = 2.0


def history_window(today: date) -> tuple[date, date]:
    """The demo's history: [the 1st of the month HISTORY_MONTHS - 1 months back, tomorrow)."""
    months = today.year * 12 + today.month - 1 - (HISTORY_MONTHS - 1)
    return date(months // 12, months % 12 + 1, 1), today + timedelta(days=1)


@dataclass(frozen=True)
class FirstMinute:
    """What `make run` knows when Dagster is up."""

    data_dir: Path
    graphql_url: str
    ui_url: str
    customers_file: Path
    sandboxed: bool
    moto_url: str | None
    say: Callable[[str], None]
    stop_requested: Callable[[], bool]

    @property
    def marker(self) -> Path:
        return self.data_dir / MARKER_FILE_NAME


def run_first_minute(first: FirstMinute) -> None:
    """Collect what is due now and, on a first start with the sandbox, backfill the demo's
    history. Problems are reported, never raised: the schedule still ticks."""
    try:
        asyncio.run(_first_minute(first))
    except ServiceUnavailable as exc:
        first.say(
            f"could not ask Dagster to collect now ({exc.reason}); the schedule collects at its "
            "next tick"
        )
    except (OSError, ValueError) as exc:  # DATA_DIR or the sandbox's moto server
        first.say(f"could not set up the first collections ({exc}); the schedule collects")


async def _first_minute(first: FirstMinute) -> None:
    client = DagsterClient(first.graphql_url, LOCATION, timeout_s=60.0)
    try:
        launched = await _collect_due(client, first)
        if first.sandboxed and not first.stop_requested():
            await _backfill_history(client, first, launched)
    finally:
        await client.aclose()


async def _evaluate(client: DagsterClient, first: FirstMinute) -> list[RequestedRun] | None:
    """The schedule's runs for now, once the code location answers; None when stopping."""
    deadline = asyncio.get_running_loop().time() + READY_TIMEOUT_S
    while True:
        try:
            evaluation = await client.evaluate_schedule(SCHEDULE_NAME, datetime.now(UTC))
        except ServiceUnavailable:
            if asyncio.get_running_loop().time() > deadline:
                raise
            evaluation = None
        if evaluation is not None:
            if evaluation.error:
                first.say(f"the collection schedule failed: {evaluation.error.splitlines()[0]}")
            elif not evaluation.runs:
                first.say(
                    f"nothing to collect now (the schedule's next tick: {evaluation.skip_reason})"
                )
            return evaluation.runs
        if first.stop_requested():
            return None
        await asyncio.sleep(RETRY_S)


async def _collect_due(client: DagsterClient, first: FirstMinute) -> list[RequestedRun]:
    first.say("asking the collection schedule what its next tick collects, to collect it now")
    runs = await _evaluate(client, first)
    if not runs:
        return []
    for run in runs:
        await client.launch_requested(run, {"requested_by": REQUESTED_BY})
    pairs = ", ".join(f"{r.tags.get('customer_id')}/{r.tags.get('provider')}" for r in runs)
    first.say(f"collecting now: {pairs} ({len(runs)} runs, {first.ui_url}/runs)")
    return runs


async def _backfill_history(
    client: DagsterClient, first: FirstMinute, launched: list[RequestedRun]
) -> None:
    if first.marker.exists():
        recorded = json.loads(first.marker.read_text(encoding="utf-8"))
        when = recorded.get("launched_at", "?") if isinstance(recorded, dict) else "?"
        first.say(
            f"the demo's history was backfilled at the first start ({when}); "
            "collecting only what is due"
        )
        return
    customer = load_customers(first.customers_file).customers.get(DEMO_CUSTOMER)
    if customer is None:
        return
    today = datetime.now(UTC).date()
    start, end = history_window(today)
    providers = sorted(customer.providers)
    if "aws" in providers:
        aws_first = any(
            r.tags.get("customer_id") == DEMO_CUSTOMER and r.tags.get("provider") == "aws"
            for r in launched
        )
        try:
            if first.moto_url is None:
                raise OSError("no sandbox AWS endpoint")
            queue_aws_history(first.moto_url, today, (start, end), after_trailing=aws_first)
        except (OSError, RuntimeError) as exc:
            # Without its answers queued the run would read another window's: no AWS history.
            first.say(f"cannot queue the sandbox's AWS history ({exc}); AWS is not backfilled")
            providers.remove("aws")
    await client.add_customer_partition(DEMO_CUSTOMER)
    backfills: dict[str, str] = {}
    try:
        for provider in providers:
            backfills[provider] = await client.launch_backfill(
                partition=DEMO_CUSTOMER,
                provider=provider,
                window=(start, end),
                tags={"trigger": "backfill", "requested_by": REQUESTED_BY},
                title=f"{DEMO_CUSTOMER} history: {provider} {start} to {end}",
                description=f"The {DEMO_CUSTOMER} customer's {HISTORY_MONTHS} months of "
                f"{provider} costs, launched by make run at its first start",
            )
    finally:
        if backfills:  # never launched twice, even when only some were
            _write_marker(first.marker, today, (start, end), backfills)
    first.say(
        f"first start: backfilling the demo's history [{start}, {end}) ({HISTORY_MONTHS} "
        f"months), one Dagster backfill per provider: {first.ui_url}/overview/backfills"
    )


def _write_marker(
    path: Path, today: date, window: tuple[date, date], backfills: dict[str, str]
) -> None:
    document = {
        "launched_at": today.isoformat(),
        "window": [day.isoformat() for day in window],
        "backfills": backfills,
    }
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    os.replace(partial, path)


def queue_aws_history(
    moto_url: str, today: date, window: tuple[date, date], *, after_trailing: bool
) -> None:
    """Queue the sandbox's Cost Explorer answers for the history backfill's AWS run. moto hands
    queued answers out in order, whatever the request: they go after those of today's trailing
    window (queued by the sandbox at its start) when that collection runs first; otherwise the
    queue starts over with the history's answers first and the trailing window's after them."""
    lines = bills_until(today)
    estimated_from = today.replace(day=1)
    if not after_trailing:
        reset_moto(moto_url)
    seed_cost_explorer(moto_url, lines, *window, estimated_from=estimated_from)
    if not after_trailing:
        aws = AwsConfig(billing_account_id=accounts()["aws"].billing_account_id)
        trailing = trailing_window(today, aws)
        seed_cost_explorer(
            moto_url, lines, trailing.start, trailing.end, estimated_from=estimated_from
        )
