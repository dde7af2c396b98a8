"""The GCP detailed billing export table (`gcp_billing_export_resource_v1_<ACCOUNT>`) as BigQuery
stores it, built from generated bills with the shapes of Google's real export (see
`export_rows`: days split at Pacific midnight, invoice.month, every credit type, committed-use
fees, late usage rolling into the next invoice month, corrections exported weeks later), and
written the way the BigQuery REST API writes values: strings in `v`, records as nested `f`,
repeated fields as lists, FLOAT64 like Java's toString. Rows sit in the partition of their
export date in US Pacific time, as in Google's export, so the first hours (UTC) of a day's usage
can sit in the previous day's partition."""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from cost_local.sandbox.bills import GeneratedLine
from cost_local.sandbox.simulator import decimal_text

TABLE_PREFIX = "gcp_billing_export_resource_v1_"
PARTITION_TIME = "_partitiontime"  # the pseudo-column, kept in each row beside its fields
PARTITION_ZONE = ZoneInfo("America/Los_Angeles")
# Usage of day D (00:00 UTC) exported at D+1 03:00 UTC = D 19:00/20:00 Pacific: partition D.
DEFAULT_EXPORT_DELAY = timedelta(days=1, hours=3)
PRECISION = Decimal("1e-6")


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
        _field(
            "project",
            "RECORD",
            _s("id"),
            _s("number"),
            _s("name"),
            _field("labels", "RECORD", _s("key"), _s("value"), mode="REPEATED"),
        ),
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


def pacific_midnight(day: date) -> datetime:
    """00:00 US Pacific of `day`, as a UTC time (07:00 or 08:00 UTC): where Google's invoice
    months and the console's days start."""
    return datetime.combine(day, time(0), PARTITION_ZONE).astimezone(UTC)


def invoice_month(usage_start: datetime) -> str:
    """The invoice month Google gives usage that is reported on time: its Pacific month."""
    return usage_start.astimezone(PARTITION_ZONE).strftime("%Y%m")


def six(amount: Decimal) -> Decimal:
    """Google exports costs "to a precision of up to six decimal places"."""
    return amount.quantize(PRECISION, rounding=ROUND_HALF_EVEN)


def project_labels(line: GeneratedLine) -> dict[str, str]:
    """The labels of the line's project (the export's `project.labels`): a cost center and an
    environment every row of the project carries, its resource labels aside."""
    return {"cost-center": f"cc-{line.sub_account_name.rsplit(' ', 1)[-1]}", "env": "production"}


def export_rows(
    lines: Iterable[GeneratedLine], export_delay: timedelta = DEFAULT_EXPORT_DELAY
) -> list[dict[str, Any]]:
    """The export rows of the generated usage and tax lines, shaped as Google writes them:
    - each UTC day of a line is two rows, split at 00:00 Pacific (usage before it belongs to the
      previous Pacific day, hence to the previous invoice month on the 1st);
    - generated credits ride on their usage rows, one credit type each (every type Google
      documents appears over a few days), amounts to six decimals;
    - a daily committed-use fee row (a "Commitment v1" SKU) per account with CUD credits;
    - on the last Pacific day of a month, some usage is reported late: exported two days into
      the next month and invoiced in it (it "rolls over to the next month's invoice");
    - each row exported `export_delay` after its usage starts (under 7-8 h puts it in the
      previous Pacific day's partition)."""
    rows: dict[tuple, list[dict[str, Any]]] = {}
    credits: list[GeneratedLine] = []
    for line in lines:
        if line.provider != "gcp":
            continue
        if line.charge_category == "Credit":
            credits.append(line)
        else:
            rows[_key(line)] = _rows(line, export_delay)
    fees: dict[tuple[str, date], list[dict[str, Any]]] = {}
    for credit in credits:
        kind = credit_type(credit)
        for row, amount in zip(
            rows[_key(credit, "Usage")], _split(credit, six(credit.billed_cost)), strict=True
        ):
            row["credits"].append(
                {
                    "name": CREDIT_NAMES[kind],
                    "amount": amount,
                    "full_name": f"{CREDIT_NAMES[kind]}: {credit.service_name}",
                    "id": f"{kind.title().replace('_', '')}:{credit.sku_id}",
                    "type": kind,
                }
            )
            if kind == "COMMITTED_USAGE_DISCOUNT":
                fees.setdefault((credit.billing_account_id, credit.charge_date), []).append(row)
    out = [row for group in rows.values() for row in group]
    out.extend(_fee_row(covered, export_delay) for covered in fees.values())
    return sorted(out, key=lambda r: (r["usage_start_time"], r["project"]["id"], r["sku"]["id"]))


# Every credits.type of the detailed export (Google's schema); the sandbox gives each
# generated credit one of them, turning with the day so every type shows up within 9 days.
CREDIT_TYPES = (
    "COMMITTED_USAGE_DISCOUNT",
    "COMMITTED_USAGE_DISCOUNT_DOLLAR_BASE",
    "SUSTAINED_USAGE_DISCOUNT",
    "DISCOUNT",
    "PROMOTION",
    "FREE_TIER",
    "SUBSCRIPTION_BENEFIT",
    "FEE_UTILIZATION_OFFSET",
    "RESELLER_MARGIN",
)
CREDIT_NAMES = {
    "COMMITTED_USAGE_DISCOUNT": "Committed use discount: CPU",
    "COMMITTED_USAGE_DISCOUNT_DOLLAR_BASE": "Committed use discount - dollar based",
    "SUSTAINED_USAGE_DISCOUNT": "Sustained usage discount",
    "DISCOUNT": "Spending based discount",
    "PROMOTION": "Free trial credit",
    "FREE_TIER": "Free tier",
    "SUBSCRIPTION_BENEFIT": "Subscription benefit",
    "FEE_UTILIZATION_OFFSET": "Committed use discount fee utilization offset",
    "RESELLER_MARGIN": "Reseller margin",
}
CUD_FEE_SKU = ("7E3C-1D2A-CUD1", "Commitment v1: Cpu in Americas for 1 Year")
CUD_FEE_SHARE = Decimal("0.7")  # the fee is the covered usage at the committed price


def credit_type(credit: GeneratedLine) -> str:
    turn = credit.charge_date.toordinal() + zlib.crc32(credit.resource_id.encode())
    return CREDIT_TYPES[turn % len(CREDIT_TYPES)]


def _key(line: GeneratedLine, category: str | None = None) -> tuple:
    return (
        line.billing_account_id,
        line.sub_account_id,
        line.charge_date,
        line.resource_id,
        line.sku_id,
        category or line.charge_category,
    )


def _bounds(day: date) -> tuple[datetime, datetime, datetime]:
    start = datetime.combine(day, time(0), tzinfo=UTC)
    return start, pacific_midnight(day), start + timedelta(days=1)


def _split(line: GeneratedLine, amount: Decimal | None) -> tuple[Any, Any]:
    """An amount of a UTC day as (before 00:00 Pacific, after), by hours, summing exactly."""
    if amount is None:
        return None, None
    start, midnight, _ = _bounds(line.charge_date)
    hours = int((midnight - start).total_seconds() // 3600)
    first = six(amount * hours / 24)
    return first, amount - first


def _late(line: GeneratedLine, usage_start: datetime) -> bool:
    """Usage of the last Pacific day of a month that Google reports after the month closed."""
    pacific = usage_start.astimezone(PARTITION_ZONE).date()
    last_day = (pacific + timedelta(days=1)).day == 1
    return last_day and zlib.crc32(f"{line.resource_id}{line.sku_id}".encode()) % 3 == 0


def _rows(line: GeneratedLine, export_delay: timedelta) -> list[dict[str, Any]]:
    tax = line.charge_category == "Tax"
    start, midnight, end = _bounds(line.charge_date)
    costs = _split(line, six(line.billed_cost))
    lists = _split(line, None if tax else six(line.list_cost))
    quantities = _split(line, None if tax else line.pricing_quantity)
    out = []
    for (begin, finish), cost, listed, quantity in zip(
        ((start, midnight), (midnight, end)), costs, lists, quantities, strict=True
    ):
        exported, month = begin + export_delay, invoice_month(begin)
        if not tax and _late(line, begin):
            next_month = begin.astimezone(PARTITION_ZONE).date() + timedelta(days=1)
            exported = pacific_midnight(next_month) + timedelta(days=2, hours=3)
            month = next_month.strftime("%Y%m")
        out.append(
            {
                "billing_account_id": line.billing_account_id,
                "service": {
                    "id": line.sku_id.split("-")[0] if line.sku_id else "",
                    "description": line.service_name,
                },
                "sku": {"id": line.sku_id, "description": line.usage_type},
                "usage_start_time": begin,
                "usage_end_time": finish,
                "project": {
                    "id": line.sub_account_id,
                    "number": str(zlib.crc32(line.sub_account_id.encode()) * 977),
                    "name": line.sub_account_name,
                    "labels": [
                        {"key": k, "value": v} for k, v in sorted(project_labels(line).items())
                    ],
                },
                "labels": [{"key": k, "value": v} for k, v in sorted(line.tags.items())],
                "location": {
                    "location": line.region,
                    "country": "",
                    "region": line.region,
                    "zone": "",
                },
                "resource": {"name": line.resource_name, "global_name": line.resource_id},
                "export_time": exported,
                "cost": cost,
                "currency": line.currency,
                "currency_conversion_rate": Decimal(1),
                "usage": {
                    "amount": quantity,
                    "unit": line.pricing_unit,
                    "amount_in_pricing_units": quantity,
                    "pricing_unit": line.pricing_unit,
                },
                "credits": [],
                "invoice": {"month": month},
                "cost_type": "tax" if tax else "regular",
                "cost_at_list": listed,
                PARTITION_TIME: partition_time(exported),
            }
        )
    return out


def _fee_row(covered: list[dict[str, Any]], export_delay: timedelta) -> dict[str, Any]:
    """The day's committed-use fee: Compute Engine's "Commitment v1" SKU, a regular row."""
    first = min(covered, key=lambda r: r["usage_start_time"])
    discount = sum(
        (c["amount"] for row in covered for c in row["credits"] if c["type"].startswith("COMM")),
        Decimal(0),
    )
    fee = six(-discount * CUD_FEE_SHARE)
    begin = datetime.combine(first["usage_start_time"].date(), time(0), UTC)
    exported = begin + export_delay
    return {
        **first,
        "service": {"id": "6F81-5844-456A", "description": "Compute Engine"},
        "sku": {"id": CUD_FEE_SKU[0], "description": CUD_FEE_SKU[1]},
        "usage_start_time": begin,
        "usage_end_time": begin + timedelta(days=1),
        "labels": [],
        "resource": {"name": "", "global_name": ""},
        "export_time": exported,
        "cost": fee,
        "cost_at_list": fee,
        "usage": {
            "amount": Decimal(24),
            "unit": "hour",
            "amount_in_pricing_units": Decimal(24),
            "pricing_unit": "hour",
        },
        "credits": [],
        "invoice": {"month": invoice_month(begin)},
        "cost_type": "regular",
        PARTITION_TIME: partition_time(exported),
    }


def correction_rows(
    original: dict[str, Any], exported: datetime, remonetized_share: Decimal = Decimal("0.5")
) -> list[dict[str, Any]]:
    """Google's correction of an earlier row, as the detailed-usage page describes it: new rows
    on the source SKU dated to the original usage, one negating it (cost and credits) and one
    re-monetizing the corrected amount, exported (and invoiced) in the month they are issued."""

    def scaled(factor: Decimal) -> dict[str, Any]:
        listed = original["cost_at_list"]
        return {
            **original,
            "cost": six(original["cost"] * factor),
            "cost_at_list": None if listed is None else six(listed * factor),
            "credits": [{**c, "amount": six(c["amount"] * factor)} for c in original["credits"]],
            "cost_type": "adjustment",
            "export_time": exported,
            "invoice": {"month": exported.astimezone(PARTITION_ZONE).strftime("%Y%m")},
            PARTITION_TIME: partition_time(exported),
        }

    return [scaled(Decimal(-1)), scaled(remonetized_share)]


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
    if field["type"] == "NUMERIC":
        return decimal_text(value)  # NUMERIC travels as its exact decimal text
    if field["type"] == "DATE":
        return value.isoformat()
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
