"""GCP costs per customer from the BigQuery detailed billing export
(`gcp_billing_export_resource_v1_<BILLING_ACCOUNT>`), resource-level lines per day.

One query per billing account, bound by named parameters (never formatted into the SQL):
billing account, [start, end) on usage_start_time, and _PARTITIONTIME >= start - 1 day, which
prunes partitions so a run scans only the window: the export is partitioned by export date in US
Pacific time, so usage of the first day's early hours (UTC) can sit in the previous partition,
and a row is never exported before its usage starts.
Mapping to FOCUS: BilledCost/EffectiveCost <- cost, ListCost <- cost_at_list, each entry of
`credits` becomes its own "Credit" line (net = cost + credits, as Google defines it), cost_type
"tax" -> "Tax", "adjustment" -> "Adjustment", otherwise "Usage"; labels become Tags.
Options: `table` (full table id, one billing account) or `dataset` (project.dataset, the table
name derived per billing account); `project` runs the jobs elsewhere than the table's project.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, time
from decimal import Decimal
from typing import Any

import pandas as pd

from cost_pipelines.assets.collection import DateWindow, Fetched, ProviderSpec
from cost_pipelines.customers import GcpConfig
from cost_pipelines.focus.service_categories import service_category
from cost_pipelines.resources.gcp import GcpResource, GcpSession
from cost_pipelines.resources.rest import ApiRefused

SOURCE = "gcp_bigquery_billing_export"
TABLE_PREFIX = "gcp_billing_export_resource_v1_"
QUERY = """
SELECT billing_account_id, service.description AS service, sku.id AS sku_id,
  sku.description AS sku_description, usage_start_time, project.id AS project_id,
  project.name AS project_name, resource.name AS resource_name,
  resource.global_name AS resource_global_name, location.region AS region, cost, cost_at_list,
  currency, credits, cost_type, labels, usage.amount_in_pricing_units AS pricing_quantity,
  usage.pricing_unit AS pricing_unit
FROM `{table}`
WHERE billing_account_id = @billing_account_id AND usage_start_time >= @start
  AND usage_start_time < @end AND _PARTITIONTIME >= TIMESTAMP_SUB(@start, INTERVAL 1 DAY)
"""
# project.dataset.table: what BigQuery allows in ids, so the formatted name cannot carry SQL.
_TABLE_ID = re.compile(r"^[a-z][a-z0-9-]{4,29}\.[A-Za-z0-9_]{1,1024}\.[A-Za-z0-9_]{1,1024}$")
_CATEGORY = {"tax": "Tax", "adjustment": "Adjustment", "rounding_error": "Adjustment"}


def export_table(config: GcpConfig, billing_account_id: str) -> str:
    """The export table of one billing account, from the customer's options."""
    if table := config.options.get("table"):
        if len(config.billing_account_ids) > 1:
            raise ApiRefused("options.table names one table; use options.dataset for several")
    else:
        dataset = config.options.get("dataset", "")
        table = f"{dataset}.{TABLE_PREFIX}{billing_account_id.replace('-', '_')}"
    if not _TABLE_ID.match(table):
        raise ApiRefused(
            f"providers.gcp.options: {table!r} is not a BigQuery table id (project.dataset.table); "
            "give options.table, or options.dataset as project.dataset"
        )
    return table


def query_request(table: str, billing_account_id: str, window: DateWindow) -> dict[str, Any]:
    def param(name: str, kind: str, value: str) -> dict[str, Any]:
        return {"name": name, "parameterType": {"type": kind}, "parameterValue": {"value": value}}

    def ts(day: Any) -> str:
        return datetime.combine(day, time(0), UTC).isoformat(sep=" ")

    # The table id is validated config, never user data; values travel as bound parameters.
    return {
        "query": QUERY.format(table=table).strip(),
        "useLegacySql": False,
        "parameterMode": "NAMED",
        "queryParameters": [
            param("billing_account_id", "STRING", billing_account_id),
            param("start", "TIMESTAMP", ts(window.start)),
            param("end", "TIMESTAMP", ts(window.end)),
        ],
        "maxResults": 10000,
        "timeoutMs": 30000,
        "formatOptions": {"useInt64Timestamp": True},
    }


def decode(fields: list[dict[str, Any]], row: dict[str, Any]) -> dict[str, Any]:
    """One BigQuery REST row ({"f": [{"v": ...}]}) as a dict; records and lists nested."""
    return {f["name"]: _value(f, cell["v"]) for f, cell in zip(fields, row["f"], strict=True)}


def _value(field: dict[str, Any], raw: Any) -> Any:
    if field.get("mode") == "REPEATED":
        return [_value({**field, "mode": "NULLABLE"}, item["v"]) for item in raw or []]
    if raw is None:
        return None
    if field["type"] in ("RECORD", "STRUCT"):
        return decode(field["fields"], raw)
    if field["type"] in ("FLOAT", "FLOAT64", "NUMERIC", "BIGNUMERIC"):
        return Decimal(raw)  # "2.0E-7" -> Decimal exactly as written
    if field["type"] == "TIMESTAMP":
        return datetime.fromtimestamp(int(raw) / 1_000_000, UTC)
    return raw


def focus_lines(row: dict[str, Any]) -> list[dict[str, Any]]:
    """The export row's own line, then one line per credit."""
    base = {
        "ChargePeriodStart": row["usage_start_time"].date().isoformat(),
        "BillingAccountId": row["billing_account_id"],
        "SubAccountId": row["project_id"] or "",
        "SubAccountName": row["project_name"] or "",
        "ProviderName": "Google Cloud",
        "ServiceName": row["service"] or "",
        "ServiceCategory": service_category("gcp", row["service"] or ""),
        "SkuId": row["sku_id"] or "",
        "ResourceId": row["resource_global_name"] or row["resource_name"] or "",
        "ResourceName": row["resource_name"] or "",
        "RegionId": row["region"] or "",
        "BillingCurrency": row["currency"],
        "Tags": {label["key"]: label["value"] or "" for label in row["labels"]},
    }
    cost = row["cost"] or Decimal(0)
    lines = [
        {
            **base,
            "ChargeCategory": _CATEGORY.get(row["cost_type"] or "", "Usage"),
            "ChargeDescription": row["sku_description"] or "",
            "BilledCost": cost,
            "EffectiveCost": cost,
            "ListCost": row["cost_at_list"] if row["cost_at_list"] is not None else cost,
            "PricingQuantity": row["pricing_quantity"] or Decimal(0),
            "PricingUnit": row["pricing_unit"] or "",
        }
    ]
    for credit in row["credits"]:
        amount = credit["amount"] or Decimal(0)
        lines.append(
            {
                **base,
                "ChargeCategory": "Credit",
                "ChargeDescription": credit["full_name"] or credit["name"] or "",
                "BilledCost": amount,
                "EffectiveCost": amount,
                "ListCost": Decimal(0),
            }
        )
    return lines


def fetch_gcp(window: DateWindow, config: GcpConfig, session: GcpSession) -> Fetched:
    """Every billing account's export lines in the window, every result page followed."""
    lines: list[dict[str, Any]] = []
    for account in config.billing_account_ids:
        table = export_table(config, account)
        project = config.options.get("project") or table.split(".")[0]
        for page in session.query(project, query_request(table, account, window)):
            fields = page["schema"]["fields"]
            for raw in page.get("rows", []):  # BigQuery leaves `rows` out when there are none
                lines.extend(focus_lines(decode(fields, raw)))
    frame = pd.DataFrame(lines, columns=None if lines else ["BillingAccountId"])
    return Fetched(frame, session.requests, SOURCE)


GCP = ProviderSpec(
    provider="gcp",
    title="GCP",
    description=(
        "Daily GCP costs of one customer in FOCUS shape from the BigQuery billing export; "
        "re-collects 5 trailing days (the export backfills up to 5 days). Fails with "
        "'not configured' for customers without providers.gcp."
    ),
    kinds=frozenset({"gcp", "bigquery"}),
    fetch=fetch_gcp,
    resource=GcpResource(),
)
