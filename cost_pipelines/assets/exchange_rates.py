"""`exchange_rates`: the European Central Bank's euro reference rates per day, which currency
conversion at read time uses, collected daily into the `exchange_rates` table.

Which file a run downloads (the smallest one that leaves no day out):
- nothing stored yet, or stored history that starts after the oldest cost line (and after the
  ECB's first day, 1999-01-04): the full history, `eurofxref-hist.xml` (one download of a few MB;
  conversions then work for any cost period from the first run on);
- otherwise the latest day, `eurofxref-daily.xml`, when no publication day lies between the
  newest stored day and it; else the last 90 days, `eurofxref-hist-90d.xml`; and when even
  that leaves a publication day out (the asset did not run for months), the full history.
A file is parsed and checked in full before anything is written, then written in one insert:
a malformed or missing rate, a file that is not the ECB's format or an HTTP error fails the run
naming what is wrong, and the table keeps what it had. Days already stored are written again
with a newer `loaded_at` (the table keeps the newest), so re-runs are safe.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from clickhouse_connect.driver.client import Client
from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetSelection,
    DagsterRunStatus,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    MaterializeResult,
    RunRequest,
    RunsFilter,
    ScheduleDefinition,
    SensorEvaluationContext,
    SkipReason,
    asset,
    define_asset_job,
    in_process_executor,
    sensor,
)

from cost_pipelines.resources.clickhouse import ClickHouseResource
from cost_pipelines.resources.ecb import (
    BASE,
    FIRST_PUBLISHED,
    EcbRatesResource,
    Feed,
    Rates,
    RatesFile,
    publication_days_between,
)
from cost_pipelines.warehouse.schema import RATES_TABLE

ASSET_NAME = "exchange_rates"
GROUP = "reference_data"
SOURCE = "ecb_eurofxref"
JOB_NAME = "collect_exchange_rates"
SCHEDULE_NAME = "collect_exchange_rates_daily"
# The ECB publishes around 16:00 CET on TARGET working days; half an hour later it is there.
CRON = "30 16 * * 1-5"
TIMEZONE = "Europe/Berlin"
FIRST_LOAD_SENSOR = "exchange_rates_first_load"
_IN_FLIGHT = [DagsterRunStatus.QUEUED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]

_STORED_SQL = """
SELECT minOrNull(rate_date), maxOrNull(rate_date)
FROM exchange_rates
WHERE base = {base:String} AND source = {source:String}
"""
_OLDEST_COST_SQL = "SELECT minOrNull(toDate(ChargePeriodStart)) FROM costs"
_COLUMNS = ["rate_date", "base", "currency", "rate", "source", "loaded_at"]


@dataclass(frozen=True)
class Stored:
    """The days of reference rates the table holds, and the oldest day of cost data."""

    first: date | None
    last: date | None
    oldest_cost: date | None

    def needs_full_history(self) -> bool:
        if self.first is None or self.last is None:
            return True
        needed = max(self.oldest_cost or self.first, FIRST_PUBLISHED)
        return self.first > needed


def stored_state(client: Client) -> Stored:
    bound = {"base": BASE, "source": SOURCE}
    [(first, last)] = client.query(_STORED_SQL, parameters=bound).result_rows
    [(oldest_cost,)] = client.query(_OLDEST_COST_SQL).result_rows
    return Stored(first, last, oldest_cost)


def leaves_a_gap(last_stored: date, rates: Rates) -> bool:
    """True when a publication day between the newest stored day and the file's oldest is in
    neither (the file would leave it out)."""
    return bool(publication_days_between(last_stored, min(rates)))


def download(ecb: EcbRatesResource, stored: Stored) -> tuple[RatesFile, list[str]]:
    """The smallest file that leaves no day out, and every file asked for on the way."""
    asked: list[str] = []

    def fetch(feed: Feed) -> RatesFile:
        asked.append(feed.value)
        return ecb.fetch(feed)

    if stored.needs_full_history() or stored.last is None:
        return fetch(Feed.full_history), asked
    for feed in (Feed.daily, Feed.last_90_days):
        got = fetch(feed)
        if not leaves_a_gap(stored.last, got.rates):
            return got, asked
    return fetch(Feed.full_history), asked


def rate_rows(rates: Rates, loaded_at: datetime) -> list[list[Any]]:
    return [
        [day, BASE, currency, rate, SOURCE, loaded_at]
        for day, by_currency in sorted(rates.items())
        for currency, rate in sorted(by_currency.items())
    ]


@asset(
    name=ASSET_NAME,
    group_name=GROUP,
    description="The European Central Bank's euro reference rates per day (units of each "
    "currency per euro), for converting costs at read time",
)
def exchange_rates(
    context: AssetExecutionContext, warehouse: ClickHouseResource, ecb: EcbRatesResource
) -> MaterializeResult:  # type: ignore[type-arg]
    client = warehouse.get_client()
    stored = stored_state(client)
    got, asked = download(ecb, stored)
    rows = rate_rows(got.rates, datetime.now(UTC))
    client.insert(RATES_TABLE, rows, column_names=_COLUMNS)  # one insert: all of it or nothing
    after = stored_state(client)
    currencies = sorted({currency for day in got.rates.values() for currency in day})
    if after.oldest_cost and after.first and after.oldest_cost < after.first:
        context.log.warning(
            f"cost data starts {after.oldest_cost}, the ECB's rates {after.first}: "
            "earlier days cannot be converted"
        )
    context.log.info(f"{got.url}: {len(got.rates)} days, {len(currencies)} currencies")
    return MaterializeResult(
        metadata={
            "file": got.feed.value,
            "files_asked_for": ", ".join(asked),
            "days_loaded": len(got.rates),
            "currencies_loaded": len(currencies),
            "currencies": ", ".join(currencies),
            "rows_written": len(rows),
            "oldest_rate_date": min(got.rates).isoformat(),
            "newest_rate_date": max(got.rates).isoformat(),
            "stored_from": str(after.first),
            "stored_through": str(after.last),
        }
    )


exchange_rates_job = define_asset_job(
    JOB_NAME,
    selection=AssetSelection.assets(exchange_rates),
    executor_def=in_process_executor,
    description="Collect the ECB's euro reference rates",
)

exchange_rates_schedule = ScheduleDefinition(
    name=SCHEDULE_NAME,
    job=exchange_rates_job,
    cron_schedule=CRON,
    execution_timezone=TIMEZONE,
    default_status=DefaultScheduleStatus.RUNNING,
    description="Every TARGET weekday at 16:30 Frankfurt time, after the ECB publishes",
)


@sensor(
    name=FIRST_LOAD_SENSOR,
    job=exchange_rates_job,
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.RUNNING,
    description="Loads the rates once when they were never collected (a new deployment need "
    "not wait for 16:30); retries hourly while that first load fails",
)
def exchange_rates_first_load(context: SensorEvaluationContext) -> RunRequest | SkipReason:
    instance = context.instance
    if instance.get_latest_materialization_event(AssetKey(ASSET_NAME)) is not None:
        return SkipReason("the rates were collected before; the daily schedule keeps them")
    if instance.get_runs(RunsFilter(job_name=JOB_NAME, statuses=_IN_FLIGHT), limit=1):
        return SkipReason("the first load is running")
    return RunRequest(run_key=f"first-load:{datetime.now(UTC):%Y-%m-%dT%H}")
