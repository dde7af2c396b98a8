"""The FOCUS export: a period's current line items as a FOCUS 1.2 file (CSV or Parquet), written
by ClickHouse itself and passed on in chunks, so the API holds one chunk whatever the size.

Columns (FOCUS 1.2 column IDs, FOCUS columns first, then ours with the `x_` prefix, as FOCUS's
Column Handling asks), each from the stored column of the same name unless said here:
- FOCUS Null Handling: a value we store as '' (no resource, no region ...) is exported as null.
- InvoiceIssuerName and PublisherName are the ProviderName: the collectors read the clouds' own
  bills, which do not name resellers or marketplace publishers.
- Tags: a JSON object in CSV (Key-Value Format), a map of strings in Parquet; `{}` when none.
- Date/Time: ISO 8601 `YYYY-MM-DDTHH:mm:ssZ` text in CSV, timestamps (UTC) in Parquet.
- Decimals: every stored digit (Decimal(38, 12) in Parquet, plain decimal text in CSV).
- ListCost, ContractedCost (and EffectiveCost, PricingQuantity) stay null where the source
  does not publish them (Cost Explorer, the Cost Management query API), never a copy.
- Our columns: x_ChargeType, x_Estimated, x_SpreadPeriodStart/End as stored; customer_id,
  provider, source, load_id, collection_run_id, collected_at as x_CustomerId, x_Provider,
  x_Source, x_LoadId, x_CollectionRunId, x_CollectedAt.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from clickhouse_connect.driver.client import Client

from cost_api.params import Period, ProviderChoice, provider_members
from cost_api.telemetry import timed_query


class ExportFormat(StrEnum):
    csv = "csv"
    parquet = "parquet"


# The registered media types: text/csv (RFC 4180), application/vnd.apache.parquet (IANA, 2024).
MEDIA_TYPES = {
    ExportFormat.csv: "text/csv; charset=utf-8",
    ExportFormat.parquet: "application/vnd.apache.parquet",
}
CHUNK_BYTES = 1 << 20
# An export reads every line of the period: it may run far longer than an aggregate read.
EXPORT_TIMEOUT_S = 1800
PARQUET_ROW_GROUP_ROWS = 100_000

_DATE_TIMES = (
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "x_SpreadPeriodEnd",
    "x_SpreadPeriodStart",
)
_EMPTY_IS_NULL = (
    "BillingAccountName",
    "InvoiceIssuerName",
    "ProviderName",
    "PublisherName",
    "ChargeDescription",
    "PricingUnit",
    "RegionId",
    "ResourceId",
    "ResourceName",
    "SkuId",
    "SubAccountId",
    "SubAccountName",
    "x_ChargeType",
)
# (exported column, stored expression), in the file's order.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("BilledCost", "BilledCost"),
    ("BillingAccountId", "BillingAccountId"),
    ("BillingAccountName", "BillingAccountName"),
    ("BillingCurrency", "BillingCurrency"),
    ("BillingPeriodEnd", "BillingPeriodEnd"),
    ("BillingPeriodStart", "BillingPeriodStart"),
    ("ChargeCategory", "ChargeCategory"),
    ("ChargeClass", "ChargeClass"),
    ("ChargeDescription", "ChargeDescription"),
    ("ChargePeriodEnd", "ChargePeriodEnd"),
    ("ChargePeriodStart", "ChargePeriodStart"),
    ("ContractedCost", "ContractedCost"),
    ("EffectiveCost", "EffectiveCost"),
    ("InvoiceIssuerName", "ProviderName"),
    ("ListCost", "ListCost"),
    ("PricingQuantity", "PricingQuantity"),
    ("PricingUnit", "PricingUnit"),
    ("ProviderName", "ProviderName"),
    ("PublisherName", "ProviderName"),
    ("RegionId", "RegionId"),
    ("ResourceId", "ResourceId"),
    ("ResourceName", "ResourceName"),
    ("ServiceCategory", "ServiceCategory"),
    ("ServiceName", "ServiceName"),
    ("SkuId", "SkuId"),
    ("SubAccountId", "SubAccountId"),
    ("SubAccountName", "SubAccountName"),
    ("Tags", "Tags"),
    ("x_ChargeType", "x_ChargeType"),
    ("x_CollectedAt", "collected_at"),
    ("x_CollectionRunId", "collection_run_id"),
    ("x_CustomerId", "customer_id"),
    ("x_Estimated", "x_Estimated"),
    ("x_LoadId", "toString(load_id)"),
    ("x_Provider", "provider"),
    ("x_Source", "source"),
    ("x_SpreadPeriodEnd", "x_SpreadPeriodEnd"),
    ("x_SpreadPeriodStart", "x_SpreadPeriodStart"),
)


def _expression(name: str, stored: str, fmt: ExportFormat) -> str:
    if name in _EMPTY_IS_NULL:
        stored = f"nullIf({stored}, '')"
    if fmt is ExportFormat.csv:
        if name in _DATE_TIMES:
            stored = f"formatDateTime({stored}, '%Y-%m-%dT%H:%i:%SZ')"
        elif name == "x_CollectedAt":  # milliseconds kept
            stored = f"formatDateTime({stored}, '%Y-%m-%dT%H:%i:%S.%fZ')"
        elif name == "Tags":
            stored = f"toJSONString({stored})"
    return f"{stored} AS {name}"


def _export_sql(fmt: ExportFormat) -> str:
    """The one fixed SQL text per format; every value is bound. The stored columns are read in a
    subquery so that the exported names (which reuse stored ones) never shadow them."""
    selected = ",\n       ".join(_expression(name, stored, fmt) for name, stored in COLUMNS)
    clickhouse_format = "CSVWithNames" if fmt is ExportFormat.csv else "Parquet"
    return (
        f"SELECT {selected}\n"  # noqa: S608 (constant column expressions, no request values)
        "FROM (\n"
        "    SELECT * FROM costs_current(customer_id = {customer_id:String})\n"
        "    WHERE provider IN {providers:Array(String)}\n"
        "      AND ChargePeriodStart >= {start:DateTime('UTC')}\n"
        "      AND ChargePeriodStart < {end:DateTime('UTC')}\n"
        "    ORDER BY provider, ChargePeriodStart, BillingAccountId, ServiceName, ResourceId\n"
        ")\n"
        f"FORMAT {clickhouse_format}"
    )


EXPORT_SQL = {fmt: _export_sql(fmt) for fmt in ExportFormat}
_SETTINGS: dict[ExportFormat, dict[str, Any]] = {
    # NULL as an empty field (strings are always quoted, so '' and NULL stay apart).
    ExportFormat.csv: {"format_csv_null_representation": ""},
    ExportFormat.parquet: {
        "output_format_parquet_row_group_size": PARQUET_ROW_GROUP_ROWS,
        "output_format_parquet_string_as_string": 1,
    },
}


class _Body(Protocol):
    def read(self, amount: int = ..., /) -> bytes: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class Export:
    """One export: what to read and the file it becomes."""

    customer_id: str
    provider: ProviderChoice
    period: Period
    fmt: ExportFormat

    @property
    def filename(self) -> str:
        end = self.period.end.isoformat()
        return f"focus-{self.customer_id}-{self.provider}-{self.period.start}_{end}.{self.fmt}"

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.fmt]

    def parameters(self) -> dict[str, Any]:
        return {
            "customer_id": self.customer_id,
            "providers": provider_members(self.provider),
            # Bound as naive UTC text: the placeholder's type carries the zone.
            "start": self.period.start_time.replace(tzinfo=None),
            "end": self.period.end_time.replace(tzinfo=None),
        }


class ExportStream(AbstractContextManager["ExportStream"]):
    """The file ClickHouse writes, opened (so a failing query fails before any byte is sent)
    and read chunk by chunk."""

    def __init__(self, client: Client, export: Export) -> None:
        settings = {
            "max_execution_time": EXPORT_TIMEOUT_S,
            "timeout_overflow_mode": "throw",
            **_SETTINGS[export.fmt],
        }
        with timed_query("export"):  # until the warehouse starts answering; /metrics
            body: Any = client.raw_stream(
                EXPORT_SQL[export.fmt], parameters=export.parameters(), settings=settings
            )
        self._body: _Body = body

    def chunks(self) -> Iterator[bytes]:
        """The file's bytes, CHUNK_BYTES at a time; the stream is closed when done or dropped."""
        try:
            while chunk := self._body.read(CHUNK_BYTES):
                yield chunk
        finally:
            self.close()

    def close(self) -> None:
        self._body.close()

    def __exit__(self, *_exc: object) -> None:
        self.close()
