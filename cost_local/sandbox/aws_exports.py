"""AWS Data Exports for the sandbox: FOCUS_1_2_AWS files and their Manifest.json written into
moto's S3 exactly where and how Data Exports delivers them."""

from __future__ import annotations

import csv
import gzip
import io
import json
import uuid
from collections.abc import Iterable
from datetime import date, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from cost_local.sandbox.aws import MOTO_ACCOUNT
from cost_local.sandbox.bills import GeneratedLine

FOCUS_AMOUNT = pa.decimal128(38, 12)


def focus_rows(lines: Iterable[GeneratedLine]) -> list[dict[str, Any]]:
    """AWS lines as FOCUS_1_2_AWS export rows (resource level), plus an AWS-only column."""
    rows = []
    for line in lines:
        if line.provider != "aws":
            continue
        day = line.charge_date
        month = day.replace(day=1)
        rows.append(
            {
                "BillingAccountId": line.billing_account_id,
                "BillingAccountName": line.billing_account_name,
                "SubAccountId": line.sub_account_id,
                "SubAccountName": line.sub_account_name,
                "ChargePeriodStart": f"{day.isoformat()}T00:00:00Z",
                "ChargePeriodEnd": f"{(day + timedelta(days=1)).isoformat()}T00:00:00Z",
                "BillingPeriodStart": f"{month.isoformat()}T00:00:00Z",
                "BillingPeriodEnd": f"{(month + timedelta(days=32)).replace(day=1)}T00:00:00Z",
                "BilledCost": line.billed_cost,
                "EffectiveCost": line.effective_cost,
                "ListCost": line.list_cost,
                "ContractedCost": line.billed_cost,
                "BillingCurrency": line.currency,
                "ServiceName": line.service_name,
                "ServiceCategory": line.service_category,
                "ChargeCategory": line.charge_category,
                "ChargeDescription": line.description,
                "ResourceId": line.resource_id,
                "ResourceName": line.resource_name,
                "RegionId": line.region,
                "SkuId": line.sku_id,
                "PricingQuantity": line.pricing_quantity,
                "PricingUnit": line.pricing_unit,
                "Tags": dict(line.tags),
                "x_UsageType": line.usage_type,
            }
        )
    return rows


def _encode(rows: list[dict[str, Any]], fmt: str) -> bytes:
    if fmt == "parquet":
        money = {"BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "PricingQuantity"}
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
