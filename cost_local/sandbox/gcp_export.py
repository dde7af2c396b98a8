"""The GCP detailed billing export table (`gcp_billing_export_resource_v1_<ACCOUNT>`) as BigQuery
stores it, built from generated bills, and written the way the BigQuery REST API writes values:
strings in `v`, records as nested `f`, repeated fields as lists, FLOAT64 like Java's toString.
Rows sit in the partition of their export date in US Pacific time, as in Google's export, so the
first hours (UTC) of a day's usage can sit in the previous day's partition."""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from cost_local.sandbox.bills import GeneratedLine
from cost_local.sandbox.simulator import decimal_text

TABLE_PREFIX = "gcp_billing_export_resource_v1_"
PARTITION_TIME = "_partitiontime"  # the pseudo-column, kept in each row beside its fields
PARTITION_ZONE = ZoneInfo("America/Los_Angeles")
# Usage of day D (00:00 UTC) exported at D+1 03:00 UTC = D 19:00/20:00 Pacific: partition D.
DEFAULT_EXPORT_DELAY = timedelta(days=1, hours=3)


def _field(name: str, kind: str, *sub: dict[str, Any], mode: str = "NULLABLE") -> dict[str, Any]:
    field: dict[str, Any] = {"name": name, "type": kind, "mode": mode}
    if sub:
        field["fields"] = list(sub)
    return field


def _s(name: str) -> dict[str, Any]:
    return _field(name, "STRING")


def _f(name: str) -> dict[str, Any]:
    return _field(name, "FLOAT")


SCHEMA: dict[str, dict[str, Any]] = {
    f["name"]: f
    for f in (
        _s("billing_account_id"),
        _field("service", "RECORD", _s("id"), _s("description")),
        _field("sku", "RECORD", _s("id"), _s("description")),
        _field("usage_start_time", "TIMESTAMP"),
        _field("usage_end_time", "TIMESTAMP"),
        _field("project", "RECORD", _s("id"), _s("number"), _s("name")),
        _field("labels", "RECORD", _s("key"), _s("value"), mode="REPEATED"),
        _field("location", "RECORD", _s("location"), _s("country"), _s("region"), _s("zone")),
        _field("resource", "RECORD", _s("name"), _s("global_name")),
        _field("export_time", "TIMESTAMP"),
        _f("cost"),
        _s("currency"),
        _f("currency_conversion_rate"),
        _field(
            "usage",
            "RECORD",
            _f("amount"),
            _s("unit"),
            _f("amount_in_pricing_units"),
            _s("pricing_unit"),
        ),
        _field(
            "credits",
            "RECORD",
            _s("name"),
            _f("amount"),
            _s("full_name"),
            _s("id"),
            _s("type"),
            mode="REPEATED",
        ),
        _field("invoice", "RECORD", _s("month")),
        _s("cost_type"),
        _f("cost_at_list"),
    )
}


def partition_time(export_time: datetime) -> datetime:
    """_PARTITIONTIME of a row: midnight (as a UTC timestamp) of its Pacific export date."""
    return datetime.combine(export_time.astimezone(PARTITION_ZONE).date(), time(0), UTC)


def export_rows(
    lines: Iterable[GeneratedLine], export_delay: timedelta = DEFAULT_EXPORT_DELAY
) -> list[dict[str, Any]]:
    """One export row per usage or tax line, each usage row carrying its credits, exported
    `export_delay` after its usage starts (under 7-8 h puts it in the previous Pacific day)."""
    rows: dict[tuple, dict[str, Any]] = {}
    credits: list[GeneratedLine] = []
    for line in lines:
        if line.provider != "gcp":
            continue
        if line.charge_category == "Credit":
            credits.append(line)
        else:
            rows[_key(line)] = _row(line, export_delay)
    for credit in credits:
        rows[_key(credit, "Usage")]["credits"].append(
            {
                "name": credit.description,
                "amount": credit.billed_cost,
                "full_name": credit.description,
                "id": f"CommittedUsageDiscountCredit:{credit.sku_id}",
                "type": "COMMITTED_USAGE_DISCOUNT",
            }
        )
    return sorted(rows.values(), key=lambda r: (r["usage_start_time"], r["project"]["id"]))


def _key(line: GeneratedLine, category: str | None = None) -> tuple:
    return (
        line.billing_account_id,
        line.sub_account_id,
        line.charge_date,
        line.resource_id,
        line.sku_id,
        category or line.charge_category,
    )


def _row(line: GeneratedLine, export_delay: timedelta) -> dict[str, Any]:
    start = datetime.combine(line.charge_date, time(0), tzinfo=UTC)
    exported = start + export_delay
    tax = line.charge_category == "Tax"
    return {
        "billing_account_id": line.billing_account_id,
        "service": {
            "id": line.sku_id.split("-")[0] if line.sku_id else "",
            "description": line.service_name,
        },
        "sku": {"id": line.sku_id, "description": line.usage_type},
        "usage_start_time": start,
        "usage_end_time": start + timedelta(days=1),
        "project": {
            "id": line.sub_account_id,
            "number": str(zlib.crc32(line.sub_account_id.encode()) * 977),
            "name": line.sub_account_name,
        },
        "labels": [{"key": k, "value": v} for k, v in sorted(line.tags.items())],
        "location": {"location": line.region, "country": "", "region": line.region, "zone": ""},
        "resource": {"name": line.resource_name, "global_name": line.resource_id},
        "export_time": exported,
        "cost": line.billed_cost,
        "currency": line.currency,
        "currency_conversion_rate": Decimal(1),
        "usage": {
            "amount": line.pricing_quantity,
            "unit": line.pricing_unit,
            "amount_in_pricing_units": line.pricing_quantity,
            "pricing_unit": line.pricing_unit,
        },
        "credits": [],
        "invoice": {"month": line.charge_date.strftime("%Y%m")},
        "cost_type": "tax" if tax else "regular",
        "cost_at_list": line.list_cost,
        PARTITION_TIME: partition_time(exported),
    }


def cell(value: Any, field: dict[str, Any], *, int64_timestamps: bool) -> Any:
    """One value as the BigQuery REST API writes it inside `{"v": ...}`."""
    if field["mode"] == "REPEATED":
        single = {**field, "mode": "NULLABLE"}
        return [{"v": cell(v, single, int64_timestamps=int64_timestamps)} for v in value]
    if value is None:
        return None
    if field["type"] == "RECORD":
        return {
            "f": [
                {"v": cell(value.get(sub["name"]), sub, int64_timestamps=int64_timestamps)}
                for sub in field["fields"]
            ]
        }
    if field["type"] == "TIMESTAMP":
        micros = int(value.timestamp()) * 1_000_000
        return str(micros) if int64_timestamps else float_text(Decimal(micros) / 1_000_000)
    if field["type"] == "FLOAT":
        return float_text(value)
    return str(value)


def float_text(value: Decimal) -> str:
    """A FLOAT64 as BigQuery writes it (Java's Double.toString): 24.0, 0.5, 2.0E-7, 1.7E9."""
    if value == 0:
        return "0.0"
    if Decimal("1e-3") <= abs(value) < Decimal("1e7"):
        text = decimal_text(value)
        return text if "." in text else f"{text}.0"
    sign, digits, exponent = value.normalize().as_tuple()
    assert isinstance(exponent, int)
    mantissa = "".join(map(str, digits))
    power = len(digits) - 1 + exponent
    return f"{'-' if sign else ''}{mantissa[0]}.{mantissa[1:] or '0'}E{power}"
