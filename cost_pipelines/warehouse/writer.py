"""The write path every collector uses: replace one (customer, provider, billing account, date
window) with a new set of FOCUS line items, atomically for readers."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

import pandas as pd
from clickhouse_connect.driver.client import Client

from cost_pipelines.providers import PROVIDERS
from cost_pipelines.warehouse.schema import COSTS_TABLE, LOADS_TABLE

MONEY_COLUMNS = ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "PricingQuantity")
# NULL when the source does not supply them: a read never presents BilledCost under another name.
# (A source with no discounts, like Vultr, supplies them itself, equal to BilledCost.)
NULLABLE_MONEY_COLUMNS = ("EffectiveCost", "ListCost", "ContractedCost", "PricingQuantity")
# Stored as Decimal(38, 12): amounts are rounded half-even to 12 places before they are stored,
# so the run's reported totals equal the stored sums to the last digit.
MONEY_QUANTUM = Decimal("1e-12")
TIME_COLUMNS = ("ChargePeriodStart", "ChargePeriodEnd", "BillingPeriodStart", "BillingPeriodEnd")
# The whole period of a charge that was spread over its days (NULL for a one-day charge).
SPREAD_COLUMNS = ("x_SpreadPeriodStart", "x_SpreadPeriodEnd")
TEXT_COLUMNS = (
    "BillingAccountName",
    "SubAccountId",
    "SubAccountName",
    "ProviderName",
    "BillingCurrency",
    "ServiceName",
    "ServiceCategory",
    "ChargeCategory",
    "x_ChargeType",
    "ChargeDescription",
    "ResourceId",
    "ResourceName",
    "RegionId",
    "SkuId",
    "PricingUnit",
)
# What a collector must supply per line; everything else has a FOCUS-neutral default.
REQUIRED_COLUMNS = ("ChargePeriodStart", "BilledCost", "BillingCurrency")
LINE_COLUMNS = (
    *TIME_COLUMNS,
    *MONEY_COLUMNS,
    *TEXT_COLUMNS,
    "ChargeClass",
    "Tags",
    "x_Estimated",
    *SPREAD_COLUMNS,
)
STORED_COLUMNS = (
    "customer_id",
    "provider",
    "BillingAccountId",
    *LINE_COLUMNS,
    "source",
    "load_id",
    "collection_run_id",
    "collected_at",
)
_ZERO = Decimal(0)


class InvalidCostRows(ValueError):
    """A collector handed the write path rows that cannot be stored as they are."""


@dataclass(frozen=True)
class CostWindow:
    """The unit of replacement: these days [start, end) of one billing account of one customer."""

    customer_id: str
    provider: str
    billing_account_id: str
    start: date
    end: date

    def __post_init__(self) -> None:
        if self.provider not in PROVIDERS:
            raise InvalidCostRows(f"provider must be one of {PROVIDERS}, got {self.provider!r}")
        if not self.customer_id or not self.billing_account_id:
            raise InvalidCostRows("customer_id and billing_account_id must not be empty")
        if self.end <= self.start:
            raise InvalidCostRows(f"window end {self.end} must be after start {self.start}")

    @property
    def days(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range((self.end - self.start).days)]


@dataclass(frozen=True)
class ReplaceResult:
    window: CostWindow
    load_id: uuid.UUID
    rows_written: int
    billed_by_currency: dict[str, Decimal] = field(default_factory=dict)


def _utc(value: Any, column: str, row: int) -> datetime:
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise InvalidCostRows(f"row {row}: {column} {value!r} is not a timestamp") from exc
    if pd.isna(ts):
        raise InvalidCostRows(f"row {row}: {column} is missing")
    ts = ts.tz_localize(UTC) if ts.tzinfo is None else ts.tz_convert(UTC)
    return ts.to_pydatetime()


def _absent(value: Any) -> bool:
    """No value: None, NA, NaN, or an empty cell (a CSV export writes FOCUS nulls as "")."""
    return (
        value is None
        or value is pd.NA
        or value is pd.NaT
        or (isinstance(value, float) and pd.isna(value))
        or (isinstance(value, str) and not value.strip())
    )


def _money(value: Any, column: str, row: int) -> Decimal | None:
    if _absent(value):
        return None
    if isinstance(value, float):
        # Floats cannot carry exact costs; go through repr so 0.1 stays 0.1.
        value = repr(value)
    try:
        amount = Decimal(value) if not isinstance(value, Decimal) else value
    except (InvalidOperation, TypeError) as exc:
        raise InvalidCostRows(f"row {row}: {column} {value!r} is not a number") from exc
    if not amount.is_finite():
        raise InvalidCostRows(f"row {row}: {column} {value!r} is not a finite number")
    return amount.quantize(MONEY_QUANTUM, rounding=ROUND_HALF_EVEN)


def _optional_utc(value: Any, column: str, row: int) -> datetime | None:
    return None if _absent(value) else _utc(value, column, row)


def _normalise(window: CostWindow, rows: pd.DataFrame) -> dict[str, list[Any]]:
    """Validate and complete the collector's rows column by column; errors name row and column."""
    missing = [c for c in REQUIRED_COLUMNS if c not in rows.columns]
    if missing:
        raise InvalidCostRows(f"rows lack required columns: {', '.join(missing)}")
    unknown = sorted(set(rows.columns) - set(LINE_COLUMNS))
    if unknown:
        raise InvalidCostRows(f"rows have columns the schema does not know: {', '.join(unknown)}")
    n = len(rows)
    records = rows.to_dict("list")
    out: dict[str, list[Any]] = {}
    lo = datetime.combine(window.start, datetime.min.time(), UTC)
    hi = datetime.combine(window.end, datetime.min.time(), UTC)
    starts = [_utc(v, "ChargePeriodStart", i) for i, v in enumerate(records["ChargePeriodStart"])]
    for i, start in enumerate(starts):
        if not lo <= start < hi:
            raise InvalidCostRows(
                f"row {i}: ChargePeriodStart {start:%Y-%m-%d %H:%M} is outside the window "
                f"[{window.start}, {window.end})"
            )
    out["ChargePeriodStart"] = starts
    out["ChargePeriodEnd"] = (
        [_utc(v, "ChargePeriodEnd", i) for i, v in enumerate(records["ChargePeriodEnd"])]
        if "ChargePeriodEnd" in records
        else [s + timedelta(days=1) for s in starts]
    )
    month_starts = [s.replace(day=1, hour=0, minute=0, second=0, microsecond=0) for s in starts]
    month_ends = [(m + timedelta(days=32)).replace(day=1) for m in month_starts]
    for column, default in (("BillingPeriodStart", month_starts), ("BillingPeriodEnd", month_ends)):
        values = records.get(column)
        out[column] = [_utc(v, column, i) for i, v in enumerate(values)] if values else default
    for column in MONEY_COLUMNS:
        values = records.get(column) or [None] * n
        out[column] = [_money(v, column, i) for i, v in enumerate(values)]
    for i, billed in enumerate(out["BilledCost"]):
        if billed is None:
            raise InvalidCostRows(f"row {i}: BilledCost is missing")
    for column in SPREAD_COLUMNS:
        values = records.get(column) or [None] * n
        out[column] = [_optional_utc(v, column, i) for i, v in enumerate(values)]
    classes = records.get("ChargeClass") or [None] * n
    out["ChargeClass"] = [None if _absent(v) else str(v) for v in classes]
    for column in TEXT_COLUMNS:
        values = records.get(column)
        out[column] = (
            ["" if v is None or v is pd.NA else str(v) for v in values] if values else [""] * n
        )
    currencies = out["BillingCurrency"]
    for i, currency in enumerate(currencies):
        if len(currency) != 3 or not currency.isalpha():
            raise InvalidCostRows(f"row {i}: BillingCurrency {currency!r} is not an ISO 4217 code")
    out["BillingCurrency"] = [c.upper() for c in currencies]
    tags = records.get("Tags")
    out["Tags"] = [dict(t) if isinstance(t, Mapping) else {} for t in tags] if tags else [{}] * n
    # Every line of a billing period that has not ended is an estimate, whatever the source says:
    # providers rerate and add to an open period until they invoice it.
    now = datetime.now(UTC)
    supplied = records.get("x_Estimated") or [False] * n
    out["x_Estimated"] = [
        (not _absent(flag) and bool(flag)) or period_end > now
        for flag, period_end in zip(supplied, out["BillingPeriodEnd"], strict=True)
    ]
    return out


@dataclass(frozen=True)
class StagedLoad:
    """A new set of rows for a window, stored but not yet visible to readers."""

    window: CostWindow
    load_id: uuid.UUID
    loaded_at: datetime
    source: str
    run_id: str
    rows_written: int
    billed_by_currency: dict[str, Decimal]


def stage(
    client: Client, window: CostWindow, rows: pd.DataFrame, *, source: str, run_id: str = ""
) -> StagedLoad:
    """Validate the rows and store them under a fresh load id that no reader follows yet."""
    columns = _normalise(window, rows)
    n = len(rows)
    now = datetime.now(UTC)
    # Milliseconds: the precision `collected_at` keeps, so a load's rows compare equal to it.
    loaded_at = now.replace(microsecond=now.microsecond // 1000 * 1000)
    staged = StagedLoad(
        window,
        uuid.uuid4(),
        loaded_at,
        source,
        run_id,
        n,
        _totals(columns["BillingCurrency"], columns["BilledCost"]),
    )
    stamp: dict[str, list[Any]] = {
        "customer_id": [window.customer_id] * n,
        "provider": [window.provider] * n,
        "BillingAccountId": [window.billing_account_id] * n,
        "source": [source] * n,
        "load_id": [staged.load_id] * n,
        "collection_run_id": [run_id] * n,
        "collected_at": [loaded_at] * n,
    }
    data: dict[str, list[Any]] = {**columns, **stamp}
    if n:
        client.insert(
            COSTS_TABLE,
            [data[c] for c in STORED_COLUMNS],
            column_names=list(STORED_COLUMNS),
            column_oriented=True,
        )
    return staged


def publish(client: Client, staged: StagedLoad) -> None:
    """Point every day of the window at the staged load, in one insert: readers switch from the
    old set to the new one at once. Of two loads of one window, the later-staged one wins."""
    window = staged.window
    pointer: list[Any] = [window.customer_id, window.provider, window.billing_account_id]
    extra = [staged.load_id, staged.loaded_at, staged.source, staged.run_id]
    client.insert(
        LOADS_TABLE,
        [[*pointer, day, *extra] for day in window.days],
        column_names=[
            "customer_id",
            "provider",
            "BillingAccountId",
            "charge_date",
            "load_id",
            "loaded_at",
            "source",
            "collection_run_id",
        ],
    )


def clean_up(client: Client, staged: StagedLoad) -> None:
    """Drop the window's rows of loads staged before this one (superseded or failed); readers
    already ignore them. Only older loads: a later load of the same window running at the same
    time keeps its rows. The delete runs in the background (a synchronous one waited ~6 s for the
    mutation scheduler), one per month partition the window touches so only those parts are
    rewritten."""
    window = staged.window
    for partition in sorted({day.year * 100 + day.month for day in window.days}):
        client.command(
            "DELETE FROM costs IN PARTITION {partition:UInt32} "
            "WHERE customer_id = {customer_id:String} AND provider = {provider:String} "
            "AND BillingAccountId = {account:String} "
            "AND ChargePeriodStart >= {start:Date} AND ChargePeriodStart < {end:Date} "
            "AND collected_at < {loaded_at:DateTime64(3, 'UTC')} AND load_id != {load_id:UUID}",
            parameters={
                "partition": partition,
                "customer_id": window.customer_id,
                "provider": window.provider,
                "account": window.billing_account_id,
                "start": window.start,
                "end": window.end,
                # Bound as naive UTC text: the placeholder's type carries the zone.
                "loaded_at": staged.loaded_at.replace(tzinfo=None),
                "load_id": staged.load_id,
            },
            settings={"lightweight_deletes_sync": 0},
        )


def replace_window(
    client: Client,
    window: CostWindow,
    rows: pd.DataFrame,
    *,
    source: str,
    run_id: str = "",
) -> ReplaceResult:
    """Make `rows` the whole content of `window`. Rows absent from the set disappear; running it
    again with the same rows changes nothing a reader sees.

    The new rows go in under a fresh load id, invisible to readers (they read `costs_current`,
    which follows the per-day pointers in `cost_loads`); one insert then moves every day's pointer
    to the new load, and the superseded rows are deleted afterwards.
    """
    staged = stage(client, window, rows, source=source, run_id=run_id)
    publish(client, staged)
    clean_up(client, staged)
    return ReplaceResult(window, staged.load_id, staged.rows_written, staged.billed_by_currency)


def _totals(currencies: Iterable[str], amounts: Iterable[Decimal]) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = defaultdict(lambda: _ZERO)
    for currency, amount in zip(currencies, amounts, strict=True):
        totals[currency] += amount
    return dict(sorted(totals.items()))
