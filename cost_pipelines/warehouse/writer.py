"""The write path every collector uses: replace one (customer, provider, billing account, date
window) with a new set of FOCUS line items, atomically for readers.

Rows arrive as a pandas DataFrame, an Arrow table or record batch, or any iterable of those
(a collector streaming an export hands over one bounded batch at a time). Each batch of at most
BATCH_ROWS lines is validated and normalised column by column with Arrow compute and pandas
column operations, and inserted as Arrow; a value the vectorised path cannot read goes through
the per-value rules below, which name the row and the column of the first bad value."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from clickhouse_connect.driver.client import Client

from cost_pipelines.providers import PROVIDERS
from cost_pipelines.warehouse import ledger
from cost_pipelines.warehouse.schema import COSTS_TABLE, DAILY_TABLE, LOADS_TABLE, DDLContext

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
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Lines normalised and inserted at once: bounds the write path's memory whatever the window holds.
BATCH_ROWS = 100_000
_DECIMAL = pa.decimal128(38, 12)
# Wide enough to read any amount exactly before it is rounded to the stored 12 places.
_WIDE_DECIMAL = pa.decimal256(76, 30)
_TIME = pa.timestamp("s", tz="UTC")
_TAGS = pa.map_(pa.string(), pa.string())
_ARROW_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError)

Batch: TypeAlias = pd.DataFrame | pa.Table | pa.RecordBatch
Rows: TypeAlias = Batch | Iterable[Batch]


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


# A batch's column: an Arrow array (Arrow input) or a pandas Series (DataFrame input).
Column: TypeAlias = "pa.Array | pd.Series[Any]"


def _arrow(values: Column) -> pa.Array | None:
    """The column as one Arrow array (NaN as null), or None if its values are of mixed kinds."""
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks()
    if isinstance(values, pa.Array):
        return values
    try:
        return pa.array(values, from_pandas=True)
    except _ARROW_ERRORS:
        return None


def _python(values: Column) -> list[Any]:
    """The column's values as Python objects, for the per-value rules (bad values only)."""
    if isinstance(values, pa.Array | pa.ChunkedArray):
        return list(values.to_pylist())
    return list(values.array)


def _string_like(array: pa.Array) -> bool:
    kind = array.type
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return bool(
        pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind)
    )


def _as_string(array: pa.Array) -> pa.Array:
    return array if pa.types.is_string(array.type) else pc.cast(array, pa.string())


def _blank_to_null(array: pa.Array) -> pa.Array:
    """Strings with surrounding whitespace trimmed; empty ones (a CSV's null cell) as null."""
    trimmed = pc.utf8_trim_whitespace(_as_string(array))
    return pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, pa.string()), trimmed)


def _first(mask: pa.Array | np.ndarray) -> int | None:
    """Index of the first true value of a boolean mask (nulls are false), or None."""
    flags = mask.to_numpy(zero_copy_only=False) if isinstance(mask, pa.Array) else mask
    flags = np.asarray(flags, dtype=object if flags.dtype == object else None)
    hits = np.flatnonzero(flags == True)  # noqa: E712 - also false for None
    return int(hits[0]) if hits.size else None


def _absent_mask(values: Column) -> np.ndarray:
    """Per value: no value (None, NA, NaN, an empty or blank string)."""
    array = _arrow(values)
    if array is None:
        return np.array([_absent(v) for v in _python(values)], dtype=bool)
    absent = pc.is_null(array, nan_is_null=True)
    if _string_like(array):
        absent = pc.or_(absent, pc.equal(pc.utf8_trim_whitespace(_as_string(array)), ""))
    return np.asarray(pc.fill_null(absent, True).to_numpy(zero_copy_only=False), dtype=bool)


def _times(
    values: Column, column: str, offset: int, *, required: bool
) -> tuple[pa.Array, np.ndarray]:
    """(timestamps in UTC, the same as int64 microseconds); naive values are UTC. A value the
    ISO 8601 parser cannot read goes through `pd.Timestamp`, which names it if it fails too."""
    array = _arrow(values)
    parsed: pd.Series
    if array is not None and pa.types.is_timestamp(array.type):
        if array.type.tz is None:
            array = pc.assume_timezone(array, "UTC")
        parsed = pd.Series(pc.cast(array, pa.timestamp("us", tz="UTC")).to_pandas())
    elif array is not None and pa.types.is_date(array.type):
        midnight = pc.assume_timezone(pc.cast(array, pa.timestamp("us")), "UTC")
        parsed = pd.Series(midnight.to_pandas())
    else:
        source = (
            pd.Series(_as_string(array).to_pandas())
            if array is not None and _string_like(array)
            else pd.Series(_python(values), dtype=object)
        )
        parsed = pd.to_datetime(source, utc=True, format="ISO8601", errors="coerce")
    micros = parsed.dt.tz_convert(UTC).to_numpy(dtype="datetime64[us]").astype(np.int64)
    unparsed = parsed.isna().to_numpy().copy()
    if unparsed.any():
        absent = _absent_mask(values)
        retry = np.flatnonzero(unparsed if required else unparsed & ~absent)
        raw = _python(values)
        for index in retry:
            value = _utc(raw[index], column, offset + int(index))
            micros[index] = int(pd.Timestamp(value).value) // 1000
            unparsed[index] = False
    result = pa.array(micros, type=pa.timestamp("us", tz="UTC"), mask=unparsed)
    return result, micros


def _day_micros(day: date) -> int:
    """Microseconds since the epoch of a day's UTC midnight."""
    return (day - date(1970, 1, 1)).days * 86_400_000_000


def _to_seconds(micros: pa.Array) -> pa.Array:
    return pc.cast(micros, _TIME, safe=False)


def _decimal_from_arrow(array: pa.Array) -> pa.Array | None:
    """Exact amounts rounded half-even to the stored 12 places, or None if some value is not a
    plain finite number (the per-value rules then name it)."""
    try:
        if pa.types.is_null(array.type):
            return pa.nulls(len(array), _DECIMAL)
        if pa.types.is_integer(array.type):
            return pc.cast(array, _DECIMAL)
        if pa.types.is_floating(array.type):
            if not pc.all(pc.fill_null(pc.is_finite(array), True)).as_py():
                return None
            # Floats cannot carry exact costs; their shortest repr does (0.1 stays 0.1).
            array = pc.cast(array, pa.string())
        if _string_like(array):
            text = _blank_to_null(array)
            try:  # the usual case: no amount has more decimals than the stored 12
                return pc.cast(text, _DECIMAL)
            except _ARROW_ERRORS:
                array = pc.cast(text, _WIDE_DECIMAL)
        if not pa.types.is_decimal(array.type):
            return None
        if array.type.scale > 12:
            array = pc.round(array, ndigits=12, round_mode="half_to_even")
        return pc.cast(array, _DECIMAL)
    except _ARROW_ERRORS:
        return None


def _amounts(values: Column, column: str, offset: int) -> pa.Array:
    array = _arrow(values)
    amounts = _decimal_from_arrow(array) if array is not None else None
    if amounts is None:
        exact = [_money(v, column, offset + i) for i, v in enumerate(_python(values))]
        amounts = pa.array(exact, type=_DECIMAL)
    return amounts


def _texts(values: Column) -> pa.Array:
    """Text as stored: a missing value is the empty string."""
    array = _arrow(values)
    if array is None or not _string_like(array):
        return pa.array(
            ["" if v is None or v is pd.NA else str(v) for v in _python(values)], pa.string()
        )
    return pc.fill_null(_as_string(array), "")


def _optional_texts(values: Column) -> pa.Array:
    """Text or NULL: a missing or blank value is NULL."""
    array = _arrow(values)
    if array is None or not _string_like(array):
        return pa.array([None if _absent(v) else str(v) for v in _python(values)], pa.string())
    absent = pa.array(_absent_mask(array))
    return pc.if_else(absent, pa.scalar(None, pa.string()), _as_string(array))


def _tags(values: Column) -> pa.Array:
    """Tags as a string map; anything that is not a mapping is no tags."""
    array = _arrow(values) if isinstance(values, pa.Array | pa.ChunkedArray) else None
    if array is None:
        try:
            array = pa.array(values, type=_TAGS, from_pandas=True)
        except _ARROW_ERRORS:
            array = pa.array(
                [
                    {str(k): str(v) for k, v in t.items()} if isinstance(t, Mapping) else {}
                    for t in _python(values)
                ],
                type=_TAGS,
            )
    if not pa.types.is_map(array.type):
        raise InvalidCostRows(f"Tags must be a map of strings, got {array.type}")
    array = array.cast(_TAGS)
    if array.null_count:  # no tags rather than NULL
        array = pc.fill_null(array, pa.scalar([], type=_TAGS))
    return array


def _flags(values: Column) -> np.ndarray:
    array = _arrow(values)
    if array is not None and (pa.types.is_boolean(array.type) or pa.types.is_null(array.type)):
        flags = pc.fill_null(pc.cast(array, pa.bool_()), False)
        return np.asarray(flags.to_numpy(zero_copy_only=False), dtype=bool)
    return np.array([not _absent(flag) and bool(flag) for flag in _python(values)], dtype=bool)


def _columns(batch: Batch) -> dict[str, Column]:
    if isinstance(batch, pd.DataFrame):
        return {str(name): batch[name] for name in batch.columns}
    return {name: batch.column(name) for name in batch.schema.names}


def _normalise(window: CostWindow, batch: Batch, offset: int = 0) -> dict[str, pa.Array]:
    """Validate and complete one batch of the collector's rows column by column, as Arrow
    arrays of the stored types; errors name row (counted over the whole set) and column."""
    records = _columns(batch)
    missing = [c for c in REQUIRED_COLUMNS if c not in records]
    if missing:
        raise InvalidCostRows(f"rows lack required columns: {', '.join(missing)}")
    unknown = sorted(set(records) - set(LINE_COLUMNS))
    if unknown:
        raise InvalidCostRows(f"rows have columns the schema does not know: {', '.join(unknown)}")
    n = len(batch)
    out: dict[str, pa.Array] = {}
    lo, hi = _day_micros(window.start), _day_micros(window.end)
    starts, start_us = _times(
        records["ChargePeriodStart"], "ChargePeriodStart", offset, required=True
    )
    outside = _first((start_us < lo) | (start_us >= hi))
    if outside is not None:
        start = datetime.fromtimestamp(start_us[outside] / 1e6, UTC)
        raise InvalidCostRows(
            f"row {offset + outside}: ChargePeriodStart {start:%Y-%m-%d %H:%M} is outside the "
            f"window [{window.start}, {window.end})"
        )
    out["ChargePeriodStart"] = _to_seconds(starts)
    start_s = start_us.astype("datetime64[us]")
    if "ChargePeriodEnd" in records:
        ends, _ = _times(records["ChargePeriodEnd"], "ChargePeriodEnd", offset, required=True)
        out["ChargePeriodEnd"] = _to_seconds(ends)
    else:
        a_day_later = start_s + np.timedelta64(1, "D")
        out["ChargePeriodEnd"] = _to_seconds(pa.array(a_day_later, pa.timestamp("us", "UTC")))
    months = start_s.astype("datetime64[M]")
    defaults = {"BillingPeriodStart": months, "BillingPeriodEnd": months + 1}
    period_end_us: np.ndarray = (months + 1).astype("datetime64[us]").astype(np.int64)
    for column, default in defaults.items():
        if column in records and n:
            times, micros = _times(records[column], column, offset, required=True)
            out[column] = _to_seconds(times)
            if column == "BillingPeriodEnd":
                period_end_us = micros
        else:
            out[column] = pa.array(default.astype("datetime64[s]"), _TIME)
    for column in MONEY_COLUMNS:
        out[column] = (
            _amounts(records[column], column, offset)
            if column in records
            else pa.nulls(n, _DECIMAL)
        )
    missing_billed = _first(pc.is_null(out["BilledCost"]))
    if missing_billed is not None:
        raise InvalidCostRows(f"row {offset + missing_billed}: BilledCost is missing")
    for column in SPREAD_COLUMNS:
        if column in records:
            times, _ = _times(records[column], column, offset, required=False)
            out[column] = _to_seconds(times)
        else:
            out[column] = pa.nulls(n, _TIME)
    out["ChargeClass"] = (
        _optional_texts(records["ChargeClass"])
        if "ChargeClass" in records
        else pa.nulls(n, pa.string())
    )
    for column in TEXT_COLUMNS:
        out[column] = _texts(records[column]) if column in records else pa.repeat("", n)
    currencies = out["BillingCurrency"]
    valid = pc.and_(pc.equal(pc.utf8_length(currencies), 3), pc.utf8_is_alpha(currencies))
    bad = _first(pc.invert(valid))
    if bad is not None:
        raise InvalidCostRows(
            f"row {offset + bad}: BillingCurrency {currencies[bad].as_py()!r} "
            "is not an ISO 4217 code"
        )
    out["BillingCurrency"] = pc.utf8_upper(currencies)
    out["Tags"] = _tags(records["Tags"]) if "Tags" in records else pa.array([{}] * n, _TAGS)
    # Every line of a billing period that has not ended is an estimate, whatever the source says:
    # providers rerate and add to an open period until they invoice it.
    now_us = int(pd.Timestamp.now(tz=UTC).value) // 1000
    supplied = _flags(records["x_Estimated"]) if "x_Estimated" in records else np.zeros(n, bool)
    out["x_Estimated"] = pa.array(supplied | (period_end_us > now_us), pa.bool_())
    return out


def _batches(rows: Rows) -> Iterator[Batch]:
    """The rows in batches of at most BATCH_ROWS lines. An empty frame is yielded as it is, so
    its columns are still checked."""
    if isinstance(rows, pd.DataFrame):
        if rows.empty:
            yield rows
        for begin in range(0, len(rows), BATCH_ROWS):
            yield rows.iloc[begin : begin + BATCH_ROWS]
    elif isinstance(rows, pa.Table):
        if rows.num_rows == 0:
            yield rows
        yield from rows.to_batches(max_chunksize=BATCH_ROWS)
    elif isinstance(rows, pa.RecordBatch):
        for begin in range(0, max(rows.num_rows, 1), BATCH_ROWS):
            yield rows.slice(begin, BATCH_ROWS)
    else:
        for part in rows:
            yield from _batches(part)


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
    # Filled by `publish`: the days whose new lines were found identical to the current ones,
    # so their pointers stayed on the current load; `clean_up` deletes this load's lines there.
    unchanged_days: list[date] = field(default_factory=list, compare=False)


class Inserter:
    """Sends Arrow tables to the line items with one insert in flight at a time: the caller
    prepares the next batch (of the same window or the next one) while the server stores the
    previous one. A failed insert raises from the next `send` or from `wait`."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self._pool: ThreadPoolExecutor | None = None
        self._pending: Future[Any] | None = None

    def send(self, table: pa.Table) -> None:
        self.wait()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cost-insert")
        self._pending = self._pool.submit(self.client.insert_arrow, COSTS_TABLE, table)

    def wait(self) -> None:
        """Until every table sent is stored."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def close(self) -> None:
        """Wait for the insert in flight (its error is dropped: the load is abandoned)."""
        with suppress(Exception):
            self.wait()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


def _constant(value: str, n: int) -> pa.DictionaryArray:
    """`n` times one text, as a one-entry dictionary: nothing repeated is built or sent."""
    return pa.DictionaryArray.from_arrays(
        pa.array(np.zeros(n, dtype=np.int32)), pa.array([value], pa.string())
    )


class Stager:
    """Stores a window's new rows batch by batch under a fresh load id that no reader follows
    yet; `finish()` gives the StagedLoad to publish. Nothing becomes visible before `publish`.

    One insert is in flight while the next batch is validated: the client's and the server's
    work overlap. Stagers of one collection run may share an `inserter`, so the next window's
    rows are validated while the previous window's are stored. A failed insert raises from the
    next `add` or from `finish`."""

    def __init__(
        self,
        client: Client,
        window: CostWindow,
        *,
        source: str,
        run_id: str = "",
        inserter: Inserter | None = None,
    ) -> None:
        self.client, self.window, self.source, self.run_id = client, window, source, run_id
        self.load_id = uuid.uuid4()
        now = datetime.now(UTC)
        # Milliseconds: the precision `collected_at` keeps, so a load's rows compare equal to it;
        # rounded up, so the load is never dated before the write began.
        self.loaded_at = now + timedelta(microseconds=-now.microsecond % 1000)
        self.rows_written = 0
        self._totals: dict[str, Decimal] = defaultdict(lambda: _ZERO)
        self._own = inserter is None
        self._inserter = inserter if inserter is not None else Inserter(client)

    def add(self, batch: Batch) -> int:
        """Validate one batch and send it; returns its line count."""
        columns = _normalise(self.window, batch, self.rows_written)
        n = len(batch)
        if not n:
            return 0
        stamp = {
            "customer_id": _constant(self.window.customer_id, n),
            "provider": _constant(self.window.provider, n),
            "BillingAccountId": _constant(self.window.billing_account_id, n),
            "source": _constant(self.source, n),
            "load_id": _constant(str(self.load_id), n),
            "collection_run_id": _constant(self.run_id, n),
            "collected_at": pa.repeat(pa.scalar(self.loaded_at, pa.timestamp("ms", "UTC")), n),
        }
        data = {**columns, **stamp}
        table = pa.Table.from_arrays([data[c] for c in STORED_COLUMNS], names=list(STORED_COLUMNS))
        for currency, amount in _batch_totals(columns["BillingCurrency"], columns["BilledCost"]):
            self._totals[currency] += amount
        self._inserter.send(table)
        self.rows_written += n
        return n

    def close(self) -> None:
        """Wait for this stager's insert in flight (its error is dropped: the load is
        abandoned); a shared inserter is closed by its owner."""
        if self._own:
            self._inserter.close()

    def finish(self, *, wait: bool = True) -> StagedLoad:
        """The load to publish, once every batch is stored (`wait=False` with a shared inserter:
        its owner waits before publishing)."""
        if wait:
            try:
                self._inserter.wait()
            finally:
                self.close()
        return StagedLoad(
            self.window,
            self.load_id,
            self.loaded_at,
            self.source,
            self.run_id,
            self.rows_written,
            dict(sorted(self._totals.items())),
        )


def stage(
    client: Client, window: CostWindow, rows: Rows, *, source: str, run_id: str = ""
) -> StagedLoad:
    """Validate the rows and store them under a fresh load id that no reader follows yet."""
    stager = Stager(client, window, source=source, run_id=run_id)
    try:
        for batch in _batches(rows):
            stager.add(batch)
        return stager.finish()
    finally:
        stager.close()


def _batch_totals(currencies: pa.Array, amounts: pa.Array) -> list[tuple[str, Decimal]]:
    """Exact BilledCost per currency of one batch (Decimal sums, no float on the way)."""
    table = pa.table({"currency": currencies, "amount": pc.cast(amounts, pa.decimal256(76, 12))})
    sums = table.group_by("currency").aggregate([("amount", "sum")])
    return [
        (str(currency), Decimal(amount))
        for currency, amount in zip(
            sums.column("currency").to_pylist(), sums.column("amount_sum").to_pylist(), strict=True
        )
    ]


def _check_run(windows: Sequence[CostWindow]) -> CostWindow:
    """The window the windows of one collection run share (one customer, provider and
    [start, end), one per billing account), for the queries that serve them all at once."""
    if not windows:
        raise ValueError("no windows to publish")
    first = windows[0]
    accounts = [window.billing_account_id for window in windows]
    for window in windows:
        if (window.customer_id, window.provider, window.start, window.end) != (
            first.customer_id,
            first.provider,
            first.start,
            first.end,
        ):
            raise ValueError(
                f"windows published together must share customer, provider and window: "
                f"{window} is not like {first}"
            )
    if len(set(accounts)) != len(accounts):
        raise ValueError(f"windows published together must be of distinct accounts: {accounts}")
    return first


def _run_scope(loads: Sequence[StagedLoad]) -> CostWindow:
    """The window the loads of one collection run share (see _check_run)."""
    return _check_run([load.window for load in loads])


# Per (account, day, load) of the staged loads and of the loads readers see now on the days
# they replace: the number of lines and the sum of a hash of each whole line but for what differs
# between two collections of the same lines (load, run, collection time). A sum is
# order-independent (a multiset hash; UInt64 wraps, which keeps it one), the tuple hashes NULL as
# a value of its own. One query for every account of a collection run.
FINGERPRINT_SQL = f"""
SELECT BillingAccountId, toDate(ChargePeriodStart) AS day, load_id, count(),
       sum(cityHash64(tuple(* EXCEPT (load_id, collection_run_id, collected_at))))
FROM {COSTS_TABLE}
WHERE customer_id = {{customer_id:String}} AND provider = {{provider:String}}
  AND BillingAccountId IN {{accounts:Array(String)}}
  AND ChargePeriodStart >= {{start_time:DateTime('UTC')}}
  AND ChargePeriodStart < {{end_time:DateTime('UTC')}}
  AND (load_id IN {{staged:Array(UUID)}}
       OR (BillingAccountId, toDate(ChargePeriodStart), load_id)
          IN {{current:Array(Tuple(String, Date, UUID))}})
GROUP BY BillingAccountId, day, load_id
"""  # noqa: S608 (identifiers only; every value is bound)


def _unchanged(
    client: Client, loads: Sequence[StagedLoad], current: Mapping[str, list[ledger.Current]]
) -> dict[str, dict[date, uuid.UUID]]:
    """Per account, the days whose staged lines are exactly the lines readers see there now
    (same count, same multiset hash), with the load they see: publishing keeps that load's rows
    for them."""
    replaced = [(account, c) for account, days in current.items() for c in days]
    if not replaced:
        return {}
    window = loads[0].window
    rows = client.query(
        FINGERPRINT_SQL,
        parameters={
            "customer_id": window.customer_id,
            "provider": window.provider,
            "accounts": sorted(current),
            "start_time": datetime.combine(window.start, datetime.min.time()),
            "end_time": datetime.combine(window.end, datetime.min.time()),
            "staged": [str(load.load_id) for load in loads],
            "current": [(account, c.day, str(c.load_id)) for account, c in replaced],
        },
    ).result_rows
    prints = {
        (str(account), day, uuid.UUID(str(load))): (int(count), int(digest))
        for account, day, load, count, digest in rows
    }
    staged = {load.window.billing_account_id: load.load_id for load in loads}
    out: dict[str, dict[date, uuid.UUID]] = defaultdict(dict)
    for account, c in replaced:
        mine = prints.get((account, c.day, staged[account]), (0, 0))
        if mine == prints.get((account, c.day, c.load_id), (0, 0)):
            out[account][c.day] = c.load_id
    return dict(out)


def _pointers(
    loads: Sequence[StagedLoad], unchanged: Mapping[str, Mapping[date, uuid.UUID]], at: datetime
) -> pa.Table:
    """Every day's pointer of every load, as one table (one insert, one block)."""
    window = loads[0].window
    days = len(window.days)
    first = np.datetime64(window.start.isoformat(), "D")
    n = days * len(loads)
    load_ids: list[str] = []
    for load in loads:
        kept = unchanged.get(load.window.billing_account_id, {})
        load_ids.extend(str(kept.get(day, load.load_id)) for day in window.days)
    return pa.table(
        {
            "customer_id": pa.repeat(window.customer_id, n),
            "provider": pa.repeat(window.provider, n),
            "BillingAccountId": pa.array(
                [load.window.billing_account_id for load in loads for _ in range(days)]
            ),
            "charge_date": pa.array(np.tile(first + np.arange(days), len(loads)), pa.date32()),
            "load_id": pa.array(load_ids, pa.string()),
            "loaded_at": pa.array(
                [load.loaded_at for load in loads for _ in range(days)], pa.timestamp("us", "UTC")
            ),
            "published_at": pa.repeat(pa.scalar(at, pa.timestamp("us", "UTC")), n),
            "source": pa.array([load.source for load in loads for _ in range(days)]),
            "collection_run_id": pa.array([load.run_id for load in loads for _ in range(days)]),
        }
    )


def publish_loads(
    client: Client, loads: Sequence[StagedLoad], cluster: str | None = None
) -> datetime:
    """`publish` for the loads of one collection run (one per billing account, all of one
    customer, provider and window): the ledger and the checks for unchanged days are asked for
    every account at once, and every day of every account switches in one pointer insert, so
    readers see the whole run's new numbers at once, or none of them."""
    window = _run_scope(loads)
    now = datetime.now(UTC)
    published_at = now + timedelta(microseconds=-now.microsecond % 1000)
    current = ledger.current(
        client,
        customer_id=window.customer_id,
        provider=window.provider,
        start=window.start,
        end=window.end,
        loaded_at={load.window.billing_account_id: load.loaded_at for load in loads},
    )
    unchanged = _unchanged(client, loads, current)
    recorded: list[StagedLoad] = []
    try:
        for load in loads:
            account = load.window.billing_account_id
            kept = unchanged.get(account, {})
            previous = [c for c in current.get(account, []) if c.day not in kept]
            recorded.append(load)
            ledger.record(
                client,
                customer_id=window.customer_id,
                provider=window.provider,
                account=account,
                start=window.start,
                end=window.end,
                previous=previous,
                load_id=load.load_id,
                run_id=load.run_id,
                recorded_at=published_at,
            )
        client.insert_arrow(LOADS_TABLE, _pointers(loads, unchanged, published_at))
    except Exception:
        for load in recorded:
            with suppress(Exception):
                ledger.forget(client, window.customer_id, load.load_id, cluster)
        raise
    for load in loads:
        load.unchanged_days[:] = sorted(unchanged.get(load.window.billing_account_id, {}))
    return published_at


def publish(client: Client, staged: StagedLoad, cluster: str | None = None) -> datetime:
    """Record what the replace changes in the restatement ledger, then point every day of the
    window at the staged load, in one insert: readers switch from the old set to the new one at
    once. Of two loads of one window, the later-staged one wins. Returns the instant of the
    switch (`published_at` of the pointers, `recorded_at` of the ledger rows): a point-in-time
    read at or after it sees the new load.

    A day whose new lines are identical to the ones readers see there now (the usual case of a
    trailing window collected again) is not stored twice: its new pointer, dated like the others
    (so completeness sees the new collection), names the current load, and `clean_up` deletes
    the staged lines of that day, which no reader was ever pointed at. The ledger records the
    other days only.

    The ledger is computed first, while the rows readers see now are the current ones; if the
    pointers cannot be inserted, its rows are removed again (no reader saw that change)."""
    return publish_loads(client, [staged], cluster)


def _delete_text(cluster: str | None, table: str = COSTS_TABLE) -> str:
    """The clean-up's DELETE of some loads' days from the line items (or their daily sums, with
    `table=DAILY_TABLE`): on a cluster it runs on the local tables of every shard (a Distributed
    table takes no DELETE); only identifiers vary, validated by DDLContext."""
    ctx = DDLContext(cluster)
    day = "toDate(ChargePeriodStart)" if table == COSTS_TABLE else "charge_date"
    first = "ChargePeriodStart" if table == COSTS_TABLE else "charge_date"
    return (
        f"DELETE FROM {ctx.local(table)}{ctx.on_cluster} IN PARTITION {{partition:UInt32}} "  # noqa: S608 (identifiers only)
        "WHERE customer_id = {customer_id:String} AND provider = {provider:String} "
        "AND BillingAccountId = {account:String} "
        f"AND {first} >= {{start:Date}} AND {first} < {{end:Date}} "
        f"AND {day} IN {{days:Array(Date)}} AND load_id IN {{loads:Array(UUID)}}"
    )


# Per account of the run, the loads of the window staged before its own that were never
# published: no reader, now or at any earlier instant, was shown their rows (a failed or
# abandoned write). With the newest collection time of each, so the caller keeps only those
# older than the account's own load. On a cluster the pointers are the shard's own (co-located
# with the rows), as in the costs_current view.
_UNPUBLISHED_SQL = f"""
SELECT BillingAccountId, load_id, toUnixTimestamp64Milli(max(collected_at))
FROM {COSTS_TABLE}
WHERE customer_id = {{customer_id:String}} AND provider = {{provider:String}}
  AND BillingAccountId IN {{accounts:Array(String)}}
  AND ChargePeriodStart >= {{start:Date}} AND ChargePeriodStart < {{end:Date}}
  AND load_id NOT IN {{staged:Array(UUID)}}
  AND load_id NOT IN (
      SELECT load_id FROM {{loads:Identifier}}
      WHERE customer_id = {{customer_id:String}} AND provider = {{provider:String}}
        AND BillingAccountId IN {{accounts:Array(String)}}
  )
GROUP BY BillingAccountId, load_id
"""  # noqa: S608 (identifiers only)


def clean_up_loads(client: Client, loads: Sequence[StagedLoad], cluster: str | None = None) -> None:
    """`clean_up` for the published loads of one collection run, with one query for all."""
    window = _run_scope(loads)
    scope = {
        "customer_id": window.customer_id,
        "provider": window.provider,
        "start": window.start,
        "end": window.end,
    }
    found = client.query(
        _UNPUBLISHED_SQL,
        parameters={
            **scope,
            "accounts": [load.window.billing_account_id for load in loads],
            "staged": [str(load.load_id) for load in loads],
            "loads": DDLContext(cluster).local(LOADS_TABLE),
        },
    ).result_rows
    # Per account: the loads it found and the newest collection time of each (milliseconds).
    abandoned: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for account, load_id, collected_ms in found:
        abandoned[str(account)].append((str(load_id), int(collected_ms)))
    delete = [_delete_text(cluster), _delete_text(cluster, DAILY_TABLE)]
    for load in loads:
        account = load.window.billing_account_id
        staged_ms = (load.loaded_at - _EPOCH) // timedelta(milliseconds=1)
        older = [load_id for load_id, ms in abandoned.get(account, []) if ms < staged_ms]
        deletes = [(window.days, older)]
        if load.unchanged_days:
            deletes.append((load.unchanged_days, [str(load.load_id)]))
        for days, ids in deletes:
            if not ids:
                continue
            for partition in sorted({day.year * 100 + day.month for day in days}):
                for statement in delete:  # the lines, then their daily sums
                    client.command(
                        statement,
                        parameters={
                            **scope,
                            "account": account,
                            "partition": partition,
                            "days": days,
                            "loads": ids,
                        },
                        settings={"lightweight_deletes_sync": 0},
                    )


def clean_up(client: Client, staged: StagedLoad, cluster: str | None = None) -> None:
    """Drop the window's rows of loads staged before this one that were never published (a
    failed or abandoned write), and this load's own rows of the days `publish` found unchanged
    (their pointers name the load that was current); readers never saw either. Superseded loads
    stay: point-in-time reads answer from them until the retention job removes them
    (warehouse/retention.py). Only older loads: a later load of the same window running at the
    same time keeps its rows. The deletes run in the background (a synchronous one waited ~6 s
    for the mutation scheduler), one per month partition so only those parts are rewritten, and
    only when there is something to delete."""
    clean_up_loads(client, [staged], cluster)


def replace_window(
    client: Client,
    window: CostWindow,
    rows: Rows,
    *,
    source: str,
    run_id: str = "",
    cluster: str | None = None,
) -> ReplaceResult:
    """Make `rows` the whole content of `window`. Rows absent from the set disappear; running it
    again with the same rows changes nothing a reader sees.

    The new rows go in under a fresh load id, invisible to readers (they read `costs_current`,
    which follows the per-day pointers in `cost_loads`); the restatement ledger records what
    changes, one insert then moves every day's pointer to the new load (or, for a day whose lines
    are unchanged, to the load that was current: its rows are kept, the new copy is deleted),
    and the rows of failed earlier loads are deleted afterwards (superseded ones stay until
    retention removes them).
    `rows` may be an iterable of batches: they are inserted one at a time and the pointers move
    only after the last one, so a stream is as atomic as one frame. If a batch is refused, the
    batches already stored stay invisible and the next load of the window deletes them.
    """
    [result] = replace_windows(
        client, [(window, rows)], source=source, run_id=run_id, cluster=cluster
    )
    return result


def replace_windows(
    client: Client,
    windows: Iterable[tuple[CostWindow, Rows]],
    *,
    source: str,
    run_id: str = "",
    cluster: str | None = None,
) -> list[ReplaceResult]:
    """`replace_window` for the windows of one collection run: one window per billing account,
    all of one customer, provider and [start, end). Their rows are stored through one insert
    pipeline (the next window is validated while the previous one is stored), and they are
    published together: readers see every account's new numbers at once, or none of them."""
    runs = list(windows)
    _check_run([window for window, _ in runs])  # before any row is stored
    inserter = Inserter(client)
    stagers: list[Stager] = []
    try:
        for window, rows in runs:
            stager = Stager(client, window, source=source, run_id=run_id, inserter=inserter)
            stagers.append(stager)
            for batch in _batches(rows):
                stager.add(batch)
        inserter.wait()
    finally:
        inserter.close()
    loads = [stager.finish(wait=False) for stager in stagers]
    publish_loads(client, loads, cluster)
    clean_up_loads(client, loads, cluster)
    return [
        ReplaceResult(load.window, load.load_id, load.rows_written, load.billed_by_currency)
        for load in loads
    ]
