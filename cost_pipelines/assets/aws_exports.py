"""AWS Data Exports (FOCUS_1_2_AWS) from S3: resource-level lines, driven by the latest
Manifest.json of each billing period, so a re-delivered export replaces what the old one said.

Layout (AWS docs, "Understanding export delivery"):
  s3://<bucket>/<prefix>/<export-name>/data/BILLING_PERIOD=YYYY-MM/...   Parquet or CSV.gz files
  s3://<bucket>/<prefix>/<export-name>/metadata/BILLING_PERIOD=YYYY-MM/...-Manifest.json
The manifest is written last and lists the delivery's `dataFiles` as s3:// URIs; files of older
deliveries that it no longer lists are ignored.

The export is FOCUS already: BilledCost, EffectiveCost, ListCost, ContractedCost, ChargeCategory,
ChargeClass and ServiceCategory are stored as AWS wrote them (an empty ServiceCategory becomes our
table's value). A CSV export writes FOCUS nulls as empty cells (PricingQuantity on Tax rows,
pricing columns of some offerings): they are stored as NULL. A `ChargeClass=Correction` row of the
current billing period dated to an earlier one (a refund of last month's usage) is moved to the
first day of its billing period, so the invoiced month it belongs to holds it. A charge whose
period covers several days (a monthly fee) is spread over its days, up to today; rows still
dated outside the window are counted in `outside_window`, never silently dropped. There is no
independent total to reconcile with (the manifest carries none), so reference_totals is None.

An export can hold millions of lines: each data file is spooled from S3 to a temporary file and
read in bounded frames (Parquet by row group, CSV in chunks) while the write path stores them,
so the collector's memory does not grow with the export.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from cost_pipelines.assets.collection import DateWindow, Fetched, RowStream
from cost_pipelines.customers import AwsConfig, AwsExport
from cost_pipelines.focus.service_categories import service_category
from cost_pipelines.focus.spread import spread_daily
from cost_pipelines.resources.aws import AwsSession
from cost_pipelines.resources.retry import CollectionFailure, Paginator
from cost_pipelines.warehouse.writer import (
    BATCH_ROWS,
    LINE_COLUMNS,
    MONEY_COLUMNS,
    SPREAD_COLUMNS,
    TEXT_COLUMNS,
    TIME_COLUMNS,
)

SOURCE_DATA_EXPORTS = "aws_data_exports_focus"
KEPT_COLUMNS = ("BillingAccountId", *LINE_COLUMNS)
REQUIRED = ("BillingAccountId", "ChargePeriodStart", "BilledCost", "BillingCurrency")
# Columns whose empty CSV cell is a FOCUS null (text columns keep "" as the empty string).
NULLABLE_CELLS = (*MONEY_COLUMNS, *TIME_COLUMNS, *SPREAD_COLUMNS, "ChargeClass")


def billing_periods(window: DateWindow) -> list[date]:
    """First days of the months the window touches, oldest first."""
    month = window.start.replace(day=1)
    periods = []
    while month < window.end:
        periods.append(month)
        month = (month + timedelta(days=32)).replace(day=1)
    return periods


def export_root(export: AwsExport) -> str:
    return "/".join(part.strip("/") for part in (export.prefix, export.name) if part.strip("/"))


def _latest_manifest(
    session: AwsSession, s3: Any, export: AwsExport, period: date
) -> tuple[str | None, int]:
    """(key or None, requests made): the newest *Manifest.json of one billing period."""
    prefix = f"{export_root(export)}/metadata/BILLING_PERIOD={period:%Y-%m}/"

    def fetch(token: str | None) -> Any:
        params = {"Bucket": export.bucket, "Prefix": prefix}
        if token:
            params["ContinuationToken"] = token
        return session.call(s3.list_objects_v2, "s3:ListObjectsV2", **params)

    pages = Paginator(fetch, lambda page: page.get("NextContinuationToken"))
    manifests = [
        obj
        for page in pages
        for obj in page.get("Contents", [])
        if obj["Key"].endswith("Manifest.json")
    ]
    if not manifests:
        return None, pages.requests
    newest = max(manifests, key=lambda obj: (obj["LastModified"], obj["Key"]))
    return newest["Key"], pages.requests


def _read_object(session: AwsSession, s3: Any, bucket: str, key: str) -> bytes:
    answer = session.call(s3.get_object, "s3:GetObject", Bucket=bucket, Key=key)
    return bytes(answer["Body"].read())


def _spool_object(session: AwsSession, s3: Any, bucket: str, key: str, path: Path) -> None:
    """Copy an object to a local file in 1 MiB pieces: a data file is never whole in memory."""
    answer = session.call(s3.get_object, "s3:GetObject", Bucket=bucket, Key=key)
    with path.open("wb") as out:
        shutil.copyfileobj(answer["Body"], out, 1 << 20)


def _tags(value: Any) -> dict[str, str]:
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    if isinstance(value, list):  # Parquet maps arrive as (key, value) pairs
        return {str(k): str(v) for k, v in value}
    if isinstance(value, str) and value.strip():
        return {str(k): str(v) for k, v in json.loads(value).items()}
    return {}


def _arrow_dtype(kind: pa.DataType) -> pd.ArrowDtype | None:
    """Parquet amounts and maps stay Arrow-backed in pandas: no Python object per value."""
    if pa.types.is_decimal(kind) or pa.types.is_map(kind):
        return pd.ArrowDtype(kind)
    return None


def _check_columns(columns: list[str], uri: str) -> None:
    missing = [column for column in REQUIRED if column not in columns]
    if missing:
        raise CollectionFailure(f"export data file {uri} lacks FOCUS columns {', '.join(missing)}")


def _raw_frames(path: Path, uri: str) -> Iterator[pd.DataFrame]:
    """The data file's columns we store, in frames of at most BATCH_ROWS lines: Parquet row
    group by row group, CSV in chunks (amounts stay exact strings in CSV)."""
    if uri.endswith(".parquet"):
        parquet = pq.ParquetFile(path)
        names = parquet.schema_arrow.names
        _check_columns(names, uri)
        kept = [column for column in KEPT_COLUMNS if column in names]
        for batch in parquet.iter_batches(batch_size=BATCH_ROWS, columns=kept):
            yield batch.to_pandas(types_mapper=_arrow_dtype)
    elif uri.endswith((".csv.gz", ".csv")):
        chunks = pd.read_csv(
            path,
            dtype=str,
            keep_default_na=False,
            compression="gzip" if uri.endswith(".gz") else None,
            chunksize=BATCH_ROWS,
        )
        with chunks:
            for chunk in chunks:
                _check_columns(list(chunk.columns), uri)
                yield chunk[[column for column in KEPT_COLUMNS if column in chunk.columns]]
    else:
        raise CollectionFailure(f"export data file {uri} is neither Parquet nor CSV(.gz)")


def _clean(frame: pd.DataFrame) -> pd.DataFrame:
    """FOCUS nulls as nulls, an empty ServiceCategory as ours, tags as a string map, a null
    text cell as empty text."""
    frame = frame.copy()
    for column in NULLABLE_CELLS:
        if column in frame.columns and not isinstance(frame[column].dtype, pd.ArrowDtype):
            frame[column] = frame[column].astype(object).where(frame[column] != "", None)
    if "ServiceCategory" in frame.columns:
        given = frame["ServiceCategory"].astype(object)
        blank = given.isna() | (given == "")
        if blank.any():
            names = frame.loc[blank, "ServiceName"].astype(object)
            categories = {name: service_category("aws", name) for name in names.unique()}
            given[blank] = names.map(categories)
        frame["ServiceCategory"] = given
    if "Tags" in frame.columns and not isinstance(frame["Tags"].dtype, pd.ArrowDtype):
        tags = [_tags(value) for value in frame["Tags"]]
        frame["Tags"] = pd.Series(tags, index=frame.index, dtype=object)
    for column in ("BillingAccountId", *TEXT_COLUMNS):
        if column in frame.columns:  # a null text cell (Parquet null) is empty text
            frame[column] = frame[column].astype(object).where(frame[column].notna(), "")
    return frame


def corrections_to_billing_period(frame: pd.DataFrame) -> pd.DataFrame:
    """Correction rows dated before their billing period start on its first day (one day long)."""
    if "ChargeClass" not in frame.columns or "BillingPeriodStart" not in frame.columns:
        return frame
    starts = pd.to_datetime(frame["ChargePeriodStart"], utc=True)
    periods = pd.to_datetime(frame["BillingPeriodStart"], utc=True)
    earlier = (frame["ChargeClass"] == "Correction") & (starts < periods)
    if not earlier.any():
        return frame
    frame = frame.copy()
    frame["ChargePeriodStart"] = starts.where(~earlier, periods)
    if "ChargePeriodEnd" in frame.columns:
        ends = pd.to_datetime(frame["ChargePeriodEnd"], utc=True)
        frame["ChargePeriodEnd"] = ends.where(~earlier, periods + pd.Timedelta(days=1))
    return frame


def spread_multi_day_charges(frame: pd.DataFrame, until: date) -> pd.DataFrame:
    """Rows whose charge period covers several days (monthly RI and Savings Plans fees, support)
    as one line per day, amounts split exactly (`spread_daily`), so day-based reads attribute the
    fee to its days. Shares of days from `until` on are not stored yet: each run re-collects the
    open month, and the last day (which carries the rounding remainder) completes the charge."""
    if "ChargePeriodEnd" not in frame.columns or frame.empty:
        return frame
    starts = pd.to_datetime(frame["ChargePeriodStart"], utc=True)
    ends = pd.to_datetime(frame["ChargePeriodEnd"], utc=True)
    # A charge starting at or after `until` stays as it is (and is counted outside the window).
    begun = starts < pd.Timestamp(until, tz="UTC")
    multi_day = begun & ((ends.dt.normalize() - starts.dt.normalize()) > pd.Timedelta(days=1))
    if not multi_day.any():
        return frame
    spread: list[dict[str, Any]] = []
    for record, start, end in zip(
        frame[multi_day].to_dict("records"), starts[multi_day], ends[multi_day], strict=True
    ):
        line: dict[str, Any] = {str(k): v for k, v in record.items()}
        last = end.date() if end == end.normalize() else end.date() + timedelta(days=1)
        for share in spread_daily(line, start.date(), last):
            if share["ChargePeriodStart"].date() < until:
                spread.append(share)
    return pd.concat([frame[~multi_day], pd.DataFrame(spread)], ignore_index=True)


def _in_window(frame: pd.DataFrame, window: DateWindow) -> tuple[pd.DataFrame, int]:
    """The rows dated inside the window, and how many were not."""
    starts = pd.to_datetime(frame["ChargePeriodStart"], utc=True)
    lo, hi = pd.Timestamp(window.start, tz="UTC"), pd.Timestamp(window.end, tz="UTC")
    inside = (starts >= lo) & (starts < hi)
    return frame[inside], int((~inside).sum())


def _frames(
    session: AwsSession, s3: Any, uris: list[str], covered: DateWindow, stream: RowStream
) -> Iterator[pd.DataFrame]:
    """Each data file's lines in bounded frames, corrected, spread and cut to the window."""
    with tempfile.TemporaryDirectory(prefix="aws-export-") as spool:
        for number, uri in enumerate(uris):
            parts = urlsplit(uri)
            path = Path(spool) / f"{number}-{Path(parts.path).name}"
            _spool_object(session, s3, parts.netloc, parts.path.lstrip("/"), path)
            stream.api_requests += 1
            try:
                for raw in _raw_frames(path, uri):
                    frame = corrections_to_billing_period(_clean(raw))
                    frame = spread_multi_day_charges(frame, covered.end)
                    inside, outside = _in_window(frame, covered)
                    stream.outside_window += outside
                    yield inside
            finally:
                path.unlink(missing_ok=True)


def fetch_focus_export(window: DateWindow, config: AwsConfig, session: AwsSession) -> Fetched:
    """Lines of every billing period in the window, each from its latest manifest. The current
    period may not be delivered yet: then the answer covers the days before it. The manifests
    are read now; the data files as the rows are written (a RowStream)."""
    export = config.export
    assert export is not None, "fetch_focus_export needs providers.aws.export"
    s3 = session.client("s3", region=export.region)
    uris: list[str] = []
    requests = 0
    covered_end = window.end
    periods = billing_periods(window)
    for index, period in enumerate(periods):
        key, made = _latest_manifest(session, s3, export, period)
        requests += made
        if key is None:
            if index == len(periods) - 1 and index > 0:
                covered_end = max(period, window.start)
                break
            raise CollectionFailure(
                f"no Manifest.json under s3://{export.bucket}/{export_root(export)}/metadata/"
                f"BILLING_PERIOD={period:%Y-%m}/: check providers.aws.export or wait for delivery"
            )
        manifest = json.loads(_read_object(session, s3, export.bucket, key))
        requests += 1
        uris.extend(manifest.get("dataFiles", []))
    covered = DateWindow(window.start, covered_end)
    stream = RowStream(frames=[])
    stream.frames = _frames(session, s3, uris, covered, stream)
    return Fetched(stream, requests, SOURCE_DATA_EXPORTS, covered)
