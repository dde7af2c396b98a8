"""AWS Data Exports for the sandbox: FOCUS_1_2_AWS files and their Manifest.json written into
moto's S3 exactly where and how Data Exports delivers them. The rows are the AWS records of
sandbox/aws_billing.py in FOCUS terms; a FOCUS null is an empty cell in CSV, as AWS writes it."""

from __future__ import annotations

import csv
import gzip
import io
import json
import uuid
from collections.abc import Iterable
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from cost_local.sandbox.aws import MOTO_ACCOUNT
from cost_local.sandbox.aws_billing import AwsRecord, aws_records
from cost_local.sandbox.bills import GeneratedLine

FOCUS_AMOUNT = pa.decimal128(38, 12)


def _stamp(day: date) -> str:
    return f"{day.isoformat()}T00:00:00Z"


def _row(record: AwsRecord, category: str, **values: Any) -> dict[str, Any]:
    month = record.day.replace(day=1)
    usage = category == "Usage"
    # Bedrock is one of the offerings whose pricing columns AWS leaves null (conformance gaps).
    priced = usage and record.service != "Amazon Bedrock"
    row: dict[str, Any] = {
        "BillingAccountId": record.billing_account_id,
        "BillingAccountName": record.billing_account_name,
        "SubAccountId": record.sub_account_id,
        "SubAccountName": record.sub_account_name,
        "ChargePeriodStart": _stamp(record.day),
        "ChargePeriodEnd": _stamp(record.period_end or record.day + timedelta(days=1)),
        "BillingPeriodStart": _stamp(month),
        "BillingPeriodEnd": _stamp((month + timedelta(days=32)).replace(day=1)),
        "BilledCost": record.unblended,
        "EffectiveCost": record.net_amortized,
        "ListCost": record.list_cost,
        "ContractedCost": record.contracted_cost,
        "BillingCurrency": record.currency,
        "ServiceName": record.service,
        "ServiceCategory": record.service_category,
        "ChargeCategory": category,
        "ChargeClass": None,
        "ChargeDescription": record.description,
        "CommitmentDiscountStatus": None,
        "ResourceId": record.resource_id or None,
        "ResourceName": record.resource_name or None,
        "RegionId": record.region or None,
        "SkuId": record.sku_id or None,
        # FOCUS: PricingQuantity is null on Tax rows (and wherever there is no price).
        "PricingQuantity": record.usage_quantity if usage else None,
        "PricingUnit": record.pricing_unit if usage else None,
        "ListUnitPrice": (record.list_cost / record.usage_quantity).quantize(Decimal("1e-12"))
        if priced and record.usage_quantity
        else None,
        "Tags": dict(record.tags),
        "x_UsageType": record.usage_type,
    }
    row.update(values)
    return row


def focus_rows(lines: Iterable[GeneratedLine]) -> list[dict[str, Any]]:
    """AWS records as FOCUS_1_2_AWS export rows (resource level), as FOCUS defines them:
    commitment-covered usage billed 0 with its amortized EffectiveCost (no negation rows), fees
    Purchase with EffectiveCost 0 and the unused commitment as its own Usage row, a refund of
    an earlier billing period as a Correction dated to the usage it refunds."""
    rows = []
    for record in aws_records(lines):
        kind = record.record_type
        if kind == "SavingsPlanNegation":
            continue  # FOCUS has no negation: the covered usage row is billed 0
        if kind in ("DiscountedUsage", "SavingsPlanCoveredUsage"):
            rows.append(
                _row(record, "Usage", BilledCost=Decimal(0), CommitmentDiscountStatus="Used")
            )
        elif kind in ("RIFee", "SavingsPlanRecurringFee", "Upfront"):
            rows.append(_row(record, "Purchase", EffectiveCost=Decimal(0)))
            if record.net_amortized:
                zero = Decimal(0)
                rows.append(
                    _row(
                        record,
                        "Usage",
                        BilledCost=zero,
                        ListCost=zero,
                        ContractedCost=zero,
                        CommitmentDiscountStatus="Unused",
                        ChargeDescription=f"Unused commitment: {record.description}",
                    )
                )
        elif kind == "Refund" and record.refunded_day is not None:
            # Issued in this billing period for usage of the previous one: FOCUS files a usage
            # refund under Usage and marks a correction of an invoiced period.
            rows.append(
                _row(
                    record,
                    "Usage",
                    ChargeClass="Correction",
                    ChargePeriodStart=_stamp(record.refunded_day),
                    ChargePeriodEnd=_stamp(record.refunded_day + timedelta(days=1)),
                    PricingQuantity=None,
                    PricingUnit=None,
                )
            )
        else:
            rows.append(_row(record, {"Usage": "Usage", "Credit": "Credit"}.get(kind, "Tax")))
    return rows


def _encode(rows: list[dict[str, Any]], fmt: str) -> bytes:
    if fmt == "parquet":
        money = {
            "BilledCost",
            "EffectiveCost",
            "ListCost",
            "ContractedCost",
            "PricingQuantity",
            "ListUnitPrice",
        }
        columns = list(rows[0]) if rows else ["BilledCost"]
        fields = [
            pa.field(
                name,
                FOCUS_AMOUNT
                if name in money
                else pa.map_(pa.string(), pa.string())
                if name == "Tags"
                else pa.string(),
            )
            for name in columns
        ]
        data = {name: [row[name] for row in rows] for name in columns}
        data["Tags"] = [list(tags.items()) for tags in data.get("Tags", [])]
        table = pa.table(data, schema=pa.schema(fields))
        buffer = io.BytesIO()
        pq.write_table(table, buffer, compression="snappy")
        return buffer.getvalue()
    out = io.StringIO()
    if rows:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "Tags": json.dumps(row["Tags"], sort_keys=True)})
    return gzip.compress(out.getvalue().encode())


def write_focus_export(
    s3: Any,
    *,
    bucket: str,
    prefix: str,
    name: str,
    billing_period: date,
    lines: Iterable[GeneratedLine],
    fmt: str = "parquet",
    files: int = 2,
) -> str:
    """Deliver one export execution for a billing period the way Data Exports does: data files
    under a fresh execution folder, then the Manifest.json listing them. Returns its key."""
    if fmt not in ("parquet", "csv.gz"):
        raise ValueError(f"fmt must be 'parquet' or 'csv.gz', got {fmt!r}")
    root = "/".join(p.strip("/") for p in (prefix, name) if p.strip("/"))
    period = f"BILLING_PERIOD={billing_period:%Y-%m}"
    execution = uuid.uuid4().hex
    rows = [
        r
        for r in focus_rows(lines)
        if r["BillingPeriodStart"].startswith(f"{billing_period:%Y-%m}")
    ]
    chunk = max(1, -(-len(rows) // files))
    keys = []
    for number, offset in enumerate(range(0, max(len(rows), 1), chunk), start=1):
        extension = "snappy.parquet" if fmt == "parquet" else "csv.gz"
        key = f"{root}/data/{period}/{execution}/{name}-{number:05d}.{extension}"
        s3.put_object(Bucket=bucket, Key=key, Body=_encode(rows[offset : offset + chunk], fmt))
        keys.append(key)
    manifest = {
        "executionId": execution,
        "exportArn": f"arn:aws:bcm-data-exports:us-east-1:{MOTO_ACCOUNT}:export/{name}",
        "columns": [{"name": column, "type": "string"} for column in (rows[0] if rows else {})],
        "dataFiles": [f"s3://{bucket}/{key}" for key in keys],
        "billingPeriod": {"start": f"{billing_period:%Y-%m}-01"},
    }
    manifest_key = f"{root}/metadata/{period}/{name}-Manifest.json"
    s3.put_object(Bucket=bucket, Key=manifest_key, Body=json.dumps(manifest).encode())
    return manifest_key


_SHARE = Decimal("1e-12")
_DIVIDED = ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "PricingQuantity")


def daily_rows(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """What each day holds of the export's rows: a row whose charge period covers several days
    (a monthly fee) in equal daily shares rounded half-even to 12 decimals, the last day taking
    the remainder, so the days add up to the row exactly; one-day rows as they are."""
    out = []
    for row in rows:
        first = date.fromisoformat(row["ChargePeriodStart"][:10])
        last = date.fromisoformat(row["ChargePeriodEnd"][:10])
        days = (last - first).days
        if days <= 1:
            out.append(row)
            continue
        for index in range(days):
            share = dict(row)
            for column in _DIVIDED:
                amount = row.get(column)
                if amount is None:
                    continue
                each = (Decimal(amount) / days).quantize(_SHARE, rounding=ROUND_HALF_EVEN)
                share[column] = each if index < days - 1 else Decimal(amount) - each * (days - 1)
            share["ChargePeriodStart"] = _stamp(first + timedelta(days=index))
            share["ChargePeriodEnd"] = _stamp(first + timedelta(days=index + 1))
            out.append(share)
    return out
