"""What every provider's cost asset shares: the customer partitions, the trailing window, run
config, the window-replace write per billing account and the materialization metadata. A provider
module supplies only a `ProviderSpec`: how to open its client and fetch FOCUS rows for a window."""

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

import pandas as pd
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import OperationalError
from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    Config,
    Failure,
    MaterializeResult,
    MetadataValue,
    PartitionsDefinition,
    RetryRequested,
    asset,
)
from pydantic import Field

from cost_pipelines.assets.checks import (
    DayTotals,
    WrittenWindow,
    check_specs,
    conformance,
    reconciliation,
)
from cost_pipelines.assets.summary import window_summary
from cost_pipelines.customers import (
    CollectionSettings,
    Customer,
    CustomerBook,
    ProviderConfig,
)
from cost_pipelines.logs import log_context
from cost_pipelines.providers import ProviderKey
from cost_pipelines.resources.retry import CollectionFailure
from cost_pipelines.warehouse import ledger
from cost_pipelines.warehouse.writer import (
    CostWindow,
    Inserter,
    InvalidCostRows,
    StagedLoad,
    Stager,
    clean_up_loads,
    publish_loads,
)

GROUP = "costs"
OWNERS = ["team:finops"]
# A run whose warehouse is unreachable is retried this often, this long apart (about the time
# `make run` needs to restart a crashed warehouse, with room to spare).
WAREHOUSE_RETRIES = 5
WAREHOUSE_RETRY_WAIT_S = 15.0
MAX_WINDOW_DAYS = 400
_DATE = r"^\d{4}-\d{2}-\d{2}$"


@dataclass(frozen=True)
class DateWindow:
    """Days [start, end) to collect; end is exclusive like every provider API we call."""

    start: date
    end: date


@dataclass
class RowStream:
    """A source's rows as bounded frames, read one at a time while they are written (a large
    export is never whole in memory). The reader adds up the lines it found outside the window
    as it goes, and the API requests it made (one per data file read)."""

    frames: Iterable[pd.DataFrame]
    outside_window: int = 0
    api_requests: int = 0


@dataclass(frozen=True)
class Fetched:
    """A provider's answer for a window: FOCUS rows (with BillingAccountId) and requests made.
    `rows` is one frame, or a RowStream of frames that is read once, inside the session."""

    rows: pd.DataFrame | RowStream
    api_requests: int
    source: str
    # The days the answer is complete for, when less than asked (an export not delivered yet).
    window: DateWindow | None = None
    # An independent total from the provider in the same run (an ungrouped query, an invoice's
    # amount), per billing account, day and currency: the reconciliation check compares the
    # stored lines with it. None: the source offers none.
    reference_totals: DayTotals | None = None
    reference_source: str = ""
    # Lines the provider returned for days outside the window (late corrections, items of an
    # earlier period): reported, never silently dropped.
    outside_window: int = 0


class CollectorResource(Protocol):
    """A provider's client resource: opens one customer's session for one collection."""

    def session(self, customer_id: str, config: Any) -> AbstractContextManager[Any]: ...


@dataclass(frozen=True)
class ProviderSpec:
    """Everything provider-specific about one cost asset."""

    provider: ProviderKey
    title: str
    description: str
    kinds: frozenset[str]
    # fetch(window, config, session) -> Fetched, with the session the resource opened.
    fetch: Callable[[DateWindow, Any, Any], Fetched]
    # The client resource, bound in definitions.py under the provider's key.
    resource: CollectorResource


class CollectionConfig(Config):
    """Optional run config: collect exactly [start, end) instead of the trailing window."""

    start: str | None = Field(default=None, pattern=_DATE, description="YYYY-MM-DD, inclusive")
    end: str | None = Field(default=None, pattern=_DATE, description="YYYY-MM-DD, exclusive")


def trailing_window(today: date, settings: CollectionSettings) -> DateWindow:
    """The days a provider may still restate: trailing days, the current month to date where the
    provider's invoice-to-date matters, and the whole previous month until it has closed."""
    start = today - timedelta(days=settings.trailing_days)
    month_start = today.replace(day=1)
    if settings.month_to_date:
        start = min(start, month_start)
    if today.day <= settings.month_close_days:
        start = min(start, (month_start - timedelta(days=1)).replace(day=1))
    return DateWindow(start, today + timedelta(days=1))


def requested_window(config: CollectionConfig, default: DateWindow) -> DateWindow:
    """The run config's window if it gives one, checked; otherwise the trailing window."""
    if config.start is None and config.end is None:
        return default
    if config.start is None or config.end is None:
        raise Failure("run config needs both start and end (YYYY-MM-DD, end exclusive)")
    try:
        start, end = date.fromisoformat(config.start), date.fromisoformat(config.end)
    except ValueError as exc:
        raise Failure(f"run config window is not a valid date: {exc}") from None
    if end <= start:
        raise Failure(f"run config window end {end} must be after start {start}")
    if (end - start).days > MAX_WINDOW_DAYS:
        raise Failure(f"run config window is longer than {MAX_WINDOW_DAYS} days")
    return DateWindow(start, end)


def _provider_config(book: CustomerBook, customer_id: str, spec: ProviderSpec) -> ProviderConfig:
    if customer_id in book.invalid:
        raise Failure("customer configuration is invalid: " + "; ".join(book.invalid[customer_id]))
    customer = book.customers.get(customer_id)
    if customer is None:
        raise Failure(f"customer {customer_id!r} is not in the customers file {book.path}")
    config = customer.providers.get(spec.provider)
    if config is None:
        raise Failure(
            f"{spec.title} is not configured for customer {customer_id!r} "
            f"(no providers.{spec.provider} entry in {book.path})"
        )
    return config


def _frames(rows: pd.DataFrame | RowStream) -> Iterator[pd.DataFrame]:
    if isinstance(rows, pd.DataFrame):
        yield rows
    else:
        yield from rows.frames


def _write(
    context: AssetExecutionContext,
    customer_id: str,
    spec: ProviderSpec,
    accounts: tuple[str, ...],
    window: DateWindow,
    fetched: Fetched,
) -> tuple[int, dict[str, Decimal], list[StagedLoad]]:
    """Replace the window of every configured billing account; unknown accounts fail loudly.

    The rows are staged frame by frame (each account's share under its own new load, through one
    insert pipeline), and only when every frame has been stored do the windows flip to the new
    loads, every account in one pointer insert, so a refused frame or an unknown account leaves
    every account as it was, and readers never see one account's new numbers beside another's
    old ones."""
    client = context.resources.warehouse.get_client()
    cluster = context.resources.warehouse.settings().clickhouse_cluster
    inserter = Inserter(client)
    stagers = {
        account: Stager(
            client,
            CostWindow(customer_id, spec.provider, account, window.start, window.end),
            source=fetched.source,
            run_id=context.run_id,
            inserter=inserter,
        )
        for account in accounts
    }
    try:
        for frame in _frames(fetched.rows):
            if frame.empty:
                continue
            ids = frame["BillingAccountId"].astype(str)
            unknown = sorted(set(ids.unique()) - set(accounts))
            if unknown:
                raise Failure(
                    f"{spec.title} returned billing accounts not configured for {customer_id!r}: "
                    f"{', '.join(unknown)}; add them to billing account ids to collect them"
                )
            for account, part in frame.groupby(ids, sort=False):
                try:
                    stagers[str(account)].add(part.drop(columns=["BillingAccountId"]))
                except InvalidCostRows as exc:
                    raise Failure(
                        f"{spec.title} rows for account {account} were rejected: {exc}"
                    ) from exc
        inserter.wait()
    finally:
        inserter.close()
    staged = [stager.finish(wait=False) for stager in stagers.values()]
    # An account with nothing in the window any more has its window replaced by nothing. Every
    # account's days switch in one pointer insert.
    publish_loads(client, staged, cluster)
    clean_up_loads(client, staged, cluster)
    written = sum(load.rows_written for load in staged)
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for load in staged:
        for currency, amount in load.billed_by_currency.items():
            totals[currency] += amount
    return written, dict(sorted(totals.items())), staged


def restatement_metadata(
    client: Client, customer: Customer, loads: list[StagedLoad]
) -> dict[str, MetadataValue]:
    """What this run's replaces changed (the ledger rows of its loads): how many changes were
    recorded, and the restatements above the customer's threshold as a markdown table."""
    recorded = ledger.of_loads(client, customer.id, [load.load_id for load in loads])
    above = ledger.notable(recorded, customer.restatements)
    threshold = customer.restatements
    rule = (
        f"BilledCost changed by at least {threshold.min_amount.normalize():f} and "
        f"{threshold.min_percent.normalize():f}% on a day that had ended when last collected"
    )
    table = ledger.markdown(above) if above else f"No restatement above the threshold ({rule})."
    return {
        "changes_recorded": MetadataValue.int(len(recorded)),
        "restatements_above_threshold": MetadataValue.int(len(above)),
        "restatements": MetadataValue.md(table),
    }


def collect(
    context: AssetExecutionContext, spec: ProviderSpec, run_config: CollectionConfig
) -> MaterializeResult[None]:
    """One customer's collection for one provider: fetch the window, replace it, report."""
    customer_id = context.partition_key
    book = context.resources.customers.load()
    config = _provider_config(book, customer_id, spec)
    window = requested_window(run_config, trailing_window(datetime.now(UTC).date(), config))
    context.log.info(f"{spec.title} for {customer_id}: collecting [{window.start}, {window.end})")
    resource: CollectorResource = getattr(context.resources, spec.provider)
    accounts = config.billing_account_ids
    try:
        with resource.session(customer_id, config) as session:
            fetched = spec.fetch(window, config, session)
            if fetched.window is not None:
                if not window.start <= fetched.window.start < fetched.window.end <= window.end:
                    raise Failure(f"{spec.title} answered for {fetched.window}, outside {window}")
                window = fetched.window
            # Inside the session: a streamed answer is read while it is written.
            written, totals, loads = _write(context, customer_id, spec, accounts, window, fetched)
    except CollectionFailure as exc:
        raise Failure(str(exc)) from None
    except KeyError as exc:  # an answer without a field the provider documents as always there
        raise Failure(
            f"{spec.title} answered without the required field {exc.args[0]!r}: nothing was "
            "written; the window keeps its previous data"
        ) from exc
    outside, requests = fetched.outside_window, fetched.api_requests
    if isinstance(fetched.rows, RowStream):
        outside += fetched.rows.outside_window
        requests += fetched.rows.api_requests
    context.log.info(
        f"{spec.title} for {customer_id}: {written} rows, {requests} API requests"
        + (f", {outside} lines outside the window" if outside else "")
    )
    client = context.resources.warehouse.get_client()
    stored = WrittenWindow(customer_id, spec.provider, accounts, window.start, window.end)
    return MaterializeResult(
        metadata={
            "rows_written": MetadataValue.int(written),
            "window_start": MetadataValue.text(window.start.isoformat()),
            "window_end": MetadataValue.text(window.end.isoformat()),
            "totals": MetadataValue.json({k: f"{v.normalize():f}" for k, v in totals.items()}),
            "source": MetadataValue.text(fetched.source),
            "api_requests": MetadataValue.int(requests),
            "lines_outside_window": MetadataValue.int(outside),
            "customer_id": MetadataValue.text(customer_id),
            **window_summary(client, stored, totals),
            **restatement_metadata(client, book.customers[customer_id], loads),
        },
        check_results=[
            conformance(client, stored),
            reconciliation(client, stored, fetched.reference_totals, fetched.reference_source),
        ],
    )


def build_cost_asset(spec: ProviderSpec, partitions: PartitionsDefinition) -> AssetsDefinition:
    """The `<provider>_costs` asset, partitioned per customer."""

    @asset(
        name=f"{spec.provider}_costs",
        group_name=GROUP,
        kinds={*spec.kinds, "clickhouse"},
        owners=OWNERS,
        description=spec.description,
        partitions_def=partitions,
        required_resource_keys={"warehouse", "customers", spec.provider},
        tags={"provider": spec.provider},
        check_specs=check_specs(AssetKey(f"{spec.provider}_costs"), partitions),
    )
    # Unsubscripted: Dagster reads this annotation and knows only the plain MaterializeResult.
    def _cost_asset(context: AssetExecutionContext, config: CollectionConfig) -> MaterializeResult:  # type: ignore[type-arg]
        # Records of the clients and the writer (plain `logging`) name the run and the pair too.
        pair = {"customer_id": context.partition_key, "provider": spec.provider}
        try:
            with log_context(run_id=context.run_id, **pair):
                return collect(context, spec, config)
        except OperationalError as exc:
            # The warehouse is unreachable (stopped, restarting): a later attempt writes the
            # window; nothing was replaced, so retrying is safe.
            context.log.warning(f"warehouse unavailable ({type(exc).__name__}): retrying")
            raise RetryRequested(
                max_retries=WAREHOUSE_RETRIES, seconds_to_wait=WAREHOUSE_RETRY_WAIT_S
            ) from exc

    return _cost_asset
