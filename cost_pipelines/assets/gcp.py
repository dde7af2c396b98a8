"""GCP costs per customer from the BigQuery detailed billing export
(`gcp_billing_export_resource_v1_<BILLING_ACCOUNT>`), resource-level lines per UTC day.

Queries, all bound by named parameters (never formatted into the SQL), per billing account:
1. restated days (scheduled runs only): `DISTINCT DATE(usage_start_time)` with COUNT(*) of the
   rows exported after the watermark, scanning `_PARTITIONTIME >= watermark - 2 days` only (the
   export is partitioned by Pacific export date, and a row's partition is never earlier than
   its export's Pacific day, at most 32 h before its export_time). The watermark is the time of
   the account's last collection that reached today, read from the warehouse's load pointers,
   minus `watermark_overlap` (a run's duration and the export's commit lag);
2. the lines: usage_start_time in [start, end) and `_PARTITIONTIME >= start - 1 day` (a row is
   never exported before its usage starts; the first UTC hours of a day sit in the previous
   Pacific day's partition), every page followed;
3. the reference: Google's own net cost `SUM(cost) + SUM(credits.amount)` (over NUMERIC casts,
   exact for the export's six-decimal amounts) per account, UTC day and currency, over the same
   rows: the reconciliation check compares the stored BilledCost with it.

Restatement coverage. Corrections and late-monetized usage arrive weeks later, dated to the
original usage day. The run's window is [oldest restated day, today + 1) (at least the
`recent_days`): the writer replaces every day of the window per account, so every day from the
oldest restated one is re-read, not only the changed days. That is the price of one window per
run: a correction of a 40-day-old day costs one run that scans 41 days of partitions (then the
watermark passes it; it is re-read by the runs within `watermark_overlap`); a quiet run scans
the recent days plus the watermark's 2 days. Restated days older than the horizon
(`trailing_days`) are counted in `lines_outside_window` and logged, not collected. A customer's
first collection (no watermark yet) reads the whole horizon. A run config window is collected
exactly as asked.

Mapping to FOCUS 1.2 (Google's detailed-usage schema and its FOCUS export):
- ChargeCategory from cost_type: regular -> Usage (a "Commitment ..." SKU, the committed-use
  fee, -> Purchase), tax -> Tax, adjustment and rounding_error -> Adjustment; ChargeClass
  "Correction" for an adjustment invoiced in a later month than its usage's Pacific month (it
  corrects an invoiced period). x_ChargeType is cost_type, or the credit's type on a credit line.
- Credits by credits.type: PROMOTION and FREE_TIER are a form of payment, their own "Credit"
  lines. Every other type (COMMITTED_USAGE_DISCOUNT[_DOLLAR_BASE], SUSTAINED_USAGE_DISCOUNT,
  DISCOUNT, SUBSCRIPTION_BENEFIT, FEE_UTILIZATION_OFFSET, RESELLER_MARGIN) is a discount: FOCUS
  wants discounts in the price of the usage they reduce, so they lower that line's BilledCost
  and EffectiveCost (Google's own FOCUS view also keeps credits on the usage row). Per day the
  lines still sum to exactly cost + credits, Google's net cost.
- BilledCost: cost + discount credits (a credit line: its amount). EffectiveCost: the same: the
  export has no amortized view, and committed-use fees are charged per day as they accrue, so a
  day's billed cost is its effective cost. ListCost: cost_at_list (the line's cost where the
  export has none, e.g. tax; the credit on a credit line: FOCUS never has a null ListCost).
  ContractedCost: cost, "inclusive of negotiated discounts" but before the spend- and
  commitment-conditional credits (the credit on a credit line, as FOCUS requires).
  PricingQuantity: usage.amount_in_pricing_units (NULL on tax and credit lines).
- BillingPeriodStart/End: invoice.month, 00:00 to 00:00 US Pacific (late usage rolls over to
  the next invoice, adjustments and their taxes land in the month issued).
- Tags: the resource's `labels` over the project's `project.labels` (a project label applies
  to every row of the project unless the resource has the same key). Label keys are lowercase
  by Google's rules, so they are stored and matched as written.
- Hourly export rows are summed to one line per day and line key. A line invoiced in another
  month than its UTC day's (the first hours of the 1st belong to the previous Pacific month,
  late usage rolls over) keeps its own billing period, which is part of the line key.
Options: `table` (full table id, one billing account) or `dataset` (project.dataset, the table
name derived per billing account); `project` runs the jobs elsewhere than the table's project.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
from dagster import get_dagster_logger

from cost_pipelines.assets.collection import DateWindow, Fetched, ProviderSpec, trailing_window
from cost_pipelines.customers import GcpConfig
from cost_pipelines.focus.service_categories import service_category
from cost_pipelines.resources.clickhouse import ClickHouseResource
from cost_pipelines.resources.gcp import GcpResource, GcpSession
from cost_pipelines.resources.rest import ApiRefused

SOURCE = "gcp_bigquery_billing_export"
REFERENCE = "BigQuery SUM(cost) + SUM(credits.amount) over the same rows"
TABLE_PREFIX = "gcp_billing_export_resource_v1_"
PACIFIC = ZoneInfo("America/Los_Angeles")
_IN_WINDOW = """billing_account_id = @billing_account_id AND usage_start_time >= @start
  AND usage_start_time < @end AND _PARTITIONTIME >= TIMESTAMP_SUB(@start, INTERVAL 1 DAY)"""
LINES_QUERY = f"""
SELECT billing_account_id, service.description AS service, sku.id AS sku_id,
  sku.description AS sku_description, usage_start_time, project.id AS project_id,
  project.name AS project_name, project.labels AS project_labels, resource.name AS resource_name,
  resource.global_name AS resource_global_name, location.region AS region, cost, cost_at_list,
  currency, credits, cost_type, labels, usage.amount_in_pricing_units AS pricing_quantity,
  usage.pricing_unit AS pricing_unit, invoice.month AS invoice_month
FROM `{{table}}`
WHERE {_IN_WINDOW}
"""  # noqa: S608 (constant text; the table id is validated, every value is bound)
TOTALS_QUERY = f"""
SELECT billing_account_id, DATE(usage_start_time) AS usage_day, currency,
  SUM(CAST(cost AS NUMERIC))
    + SUM(IFNULL((SELECT SUM(CAST(c.amount AS NUMERIC)) FROM UNNEST(credits) c), 0)) AS net
FROM `{{table}}`
WHERE {_IN_WINDOW}
GROUP BY billing_account_id, usage_day, currency
"""  # noqa: S608 (constant text; the table id is validated, every value is bound)
RESTATED_QUERY = """
SELECT DATE(usage_start_time) AS usage_day, COUNT(*) AS exported_rows
FROM `{table}`
WHERE billing_account_id = @billing_account_id AND export_time > @watermark
  AND _PARTITIONTIME >= TIMESTAMP_SUB(@watermark, INTERVAL 2 DAY)
GROUP BY usage_day
"""
# project.dataset.table: what BigQuery allows in ids, so the formatted name cannot carry SQL.
_TABLE_ID = re.compile(r"^[a-z][a-z0-9-]{4,29}\.[A-Za-z0-9_]{1,1024}\.[A-Za-z0-9_]{1,1024}$")
_CATEGORY = {"tax": "Tax", "adjustment": "Adjustment", "rounding_error": "Adjustment"}
# Credit types that are discounts, folded into the cost of the usage they reduce; PROMOTION and
# FREE_TIER (a form of payment), and any type Google adds later, are their own Credit lines.
DISCOUNT_TYPES = frozenset(
    {
        "COMMITTED_USAGE_DISCOUNT",
        "COMMITTED_USAGE_DISCOUNT_DOLLAR_BASE",
        "SUSTAINED_USAGE_DISCOUNT",
        "DISCOUNT",
        "SUBSCRIPTION_BENEFIT",
        "FEE_UTILIZATION_OFFSET",
        "RESELLER_MARGIN",
    }
)
_MONEY = ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "PricingQuantity")
_ZERO = Decimal(0)


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


def _param(name: str, kind: str, value: str) -> dict[str, Any]:
    return {"name": name, "parameterType": {"type": kind}, "parameterValue": {"value": value}}


def _ts(moment: datetime | date) -> str:
    if not isinstance(moment, datetime):
        moment = datetime.combine(moment, time(0), UTC)
    return moment.astimezone(UTC).isoformat(sep=" ")


def _request(query: str, params: list[dict[str, Any]]) -> dict[str, Any]:
    # The table id is validated config, never user data; values travel as bound parameters.
    return {
        "query": query.strip(),
        "useLegacySql": False,
        "parameterMode": "NAMED",
        "queryParameters": params,
        "maxResults": 10000,
        "timeoutMs": 30000,
        "formatOptions": {"useInt64Timestamp": True},
    }


def _window_params(billing_account_id: str, window: DateWindow) -> list[dict[str, Any]]:
    return [
        _param("billing_account_id", "STRING", billing_account_id),
        _param("start", "TIMESTAMP", _ts(window.start)),
        _param("end", "TIMESTAMP", _ts(window.end)),
    ]


def query_request(table: str, billing_account_id: str, window: DateWindow) -> dict[str, Any]:
    """The lines of one account in the window."""
    return _request(LINES_QUERY.format(table=table), _window_params(billing_account_id, window))


def totals_request(table: str, billing_account_id: str, window: DateWindow) -> dict[str, Any]:
    """Google's net cost per account, day and currency over the same rows."""
    return _request(TOTALS_QUERY.format(table=table), _window_params(billing_account_id, window))


def restated_request(table: str, billing_account_id: str, watermark: datetime) -> dict[str, Any]:
    """The usage days with rows exported after the watermark, and how many rows each."""
    params = [
        _param("billing_account_id", "STRING", billing_account_id),
        _param("watermark", "TIMESTAMP", _ts(watermark)),
    ]
    return _request(RESTATED_QUERY.format(table=table), params)


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
    if field["type"] in ("INTEGER", "INT64"):
        return int(raw)
    if field["type"] == "DATE":
        return date.fromisoformat(raw)
    if field["type"] == "TIMESTAMP":
        return datetime.fromtimestamp(int(raw) / 1_000_000, UTC)
    return raw


def billing_period(invoice_month: str | None, usage_start: datetime) -> tuple[datetime, datetime]:
    """invoice.month (YYYYMM) as [start, end): 00:00 US Pacific of its first day to the next
    month's. A row without one takes its usage's Pacific month."""
    month = invoice_month or usage_start.astimezone(PACIFIC).strftime("%Y%m")
    first = date(int(month[:4]), int(month[4:6]), 1)
    following = (first + timedelta(days=32)).replace(day=1)
    return (
        datetime.combine(first, time(0), PACIFIC).astimezone(UTC),
        datetime.combine(following, time(0), PACIFIC).astimezone(UTC),
    )


def _category(row: dict[str, Any]) -> str:
    kind = row["cost_type"] or ""
    if kind in _CATEGORY:
        return _CATEGORY[kind]
    if (row["sku_description"] or "").startswith("Commitment"):
        return "Purchase"  # the committed-use discount's fee ("Commitment v1: Cpu in ...")
    return "Usage"


def _corrects_earlier_period(row: dict[str, Any]) -> bool:
    usage_month = row["usage_start_time"].astimezone(PACIFIC).strftime("%Y%m")
    return bool(row["cost_type"] == "adjustment" and (row["invoice_month"] or "") > usage_month)


def tags_of(row: dict[str, Any]) -> dict[str, str]:
    """FOCUS Tags as finalized tags: the project's labels, inherited by every row of the
    project, overridden by the resource's own labels where both have a key (FOCUS's own example:
    inheritance favours the resource over its sub account). System labels and resource manager
    tags are not collected."""
    tags = {label["key"]: label["value"] or "" for label in row.get("project_labels") or []}
    tags.update({label["key"]: label["value"] or "" for label in row["labels"]})
    return tags


def focus_lines(row: dict[str, Any]) -> list[dict[str, Any]]:
    """The export row's own line (net of its discounts), then one line per PROMOTION or
    FREE_TIER credit (and any credit type Google adds later, rather than hiding it)."""
    usage_start = row["usage_start_time"]
    day = usage_start.astimezone(UTC).date()
    period_start, period_end = billing_period(row["invoice_month"], usage_start)
    description = row["sku_description"] or ""
    base = {
        "ChargePeriodStart": day.isoformat(),
        "BillingPeriodStart": period_start,
        "BillingPeriodEnd": period_end,
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
        "Tags": tags_of(row),
    }
    cost = row["cost"] or _ZERO
    credits = row["credits"] or []
    discounts = sum(((c["amount"] or _ZERO) for c in credits if c["type"] in DISCOUNT_TYPES), _ZERO)
    category = _category(row)
    lines = [
        {
            **base,
            "ChargeCategory": category,
            "ChargeClass": "Correction" if _corrects_earlier_period(row) else None,
            "x_ChargeType": row["cost_type"] or "",
            "ChargeDescription": description,
            "BilledCost": cost + discounts,
            "EffectiveCost": cost + discounts,
            # FOCUS: ListCost is never null; a charge without a list price (tax) is at its cost.
            "ListCost": cost + discounts if row["cost_at_list"] is None else row["cost_at_list"],
            "ContractedCost": cost,
            "PricingQuantity": None if category == "Tax" else row["pricing_quantity"],
            "PricingUnit": "" if category == "Tax" else row["pricing_unit"] or "",
        }
    ]
    for credit in credits:
        if credit["type"] in DISCOUNT_TYPES:
            continue
        amount = credit["amount"] or _ZERO
        lines.append(
            {
                **base,
                "ChargeCategory": "Credit",
                "ChargeClass": None,
                "x_ChargeType": credit["type"] or "",
                "ChargeDescription": credit["full_name"] or credit["name"] or "",
                "BilledCost": amount,
                "EffectiveCost": amount,
                # FOCUS: a charge unrelated to others (a credit) has List = Contracted = Billed.
                "ListCost": amount,
                "ContractedCost": amount,
                "PricingQuantity": None,
                "PricingUnit": "",
            }
        )
    return lines


def _add(total: Decimal | None, amount: Decimal | None) -> Decimal | None:
    return None if total is None or amount is None else total + amount


def daily_lines(lines: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Hourly export rows as one line per day and line key, amounts summed exactly; an amount
    missing on any row of a line (no cost_at_list) leaves that line's total unknown (NULL)."""
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for line in lines:
        key = tuple(
            tuple(sorted(v.items())) if isinstance(v, dict) else v
            for k, v in sorted(line.items())
            if k not in _MONEY
        )
        if key not in out:
            out[key] = dict(line)
            continue
        kept = out[key]
        for column in _MONEY:
            kept[column] = _add(kept[column], line[column])
    return list(out.values())


def _restated_days(
    session: GcpSession, project: str, table: str, account: str, since: datetime
) -> dict[date, int]:
    found: dict[date, int] = {}
    for page in session.query(project, restated_request(table, account, since)):
        fields = page["schema"]["fields"]
        for raw in page.get("rows", []):
            row = decode(fields, raw)
            found[row["usage_day"]] = found.get(row["usage_day"], 0) + row["exported_rows"]
    return found


def plan_window(
    window: DateWindow,
    config: GcpConfig,
    session: GcpSession,
    tables: dict[str, tuple[str, str]],
    today: date,
) -> tuple[DateWindow, int]:
    """The days this run re-reads, and the restated lines older than the horizon. A run config
    window (anything but today's trailing window) is collected as asked."""
    if window != trailing_window(today, config):
        return window, 0
    log = get_dagster_logger()
    start = max(window.start, today - timedelta(days=config.recent_days))
    outside = 0
    for account, (project, table) in tables.items():
        collected = session.collected_at(account)
        if collected is None:
            log.info(f"GCP {account}: no collection up to today yet, reading the horizon")
            start = window.start
            continue
        since = collected - config.watermark_overlap
        restated = _restated_days(session, project, table, account, since)
        older = {d: n for d, n in restated.items() if d < window.start}
        if older:
            outside += sum(older.values())
            log.warning(
                f"GCP {account}: {sum(older.values())} rows exported since {since:%Y-%m-%d %H:%M}"
                f" restate days before the {config.trailing_days}-day horizon, not collected: "
                + ", ".join(d.isoformat() for d in sorted(older))
            )
        changed = [d for d in restated if window.start <= d < window.end]
        if changed:
            log.info(
                f"GCP {account}: rows exported since {since:%Y-%m-%d %H:%M} restate "
                + ", ".join(d.isoformat() for d in sorted(changed))
            )
            start = min(start, *changed)
    return DateWindow(start, window.end), outside


def fetch_gcp(window: DateWindow, config: GcpConfig, session: GcpSession) -> Fetched:
    """Every billing account's export lines in the window (shrunk to the restated and recent
    days on a scheduled run), every result page followed, with Google's own daily totals."""
    tables = {}
    for account in config.billing_account_ids:
        table = export_table(config, account)
        tables[account] = (config.options.get("project") or table.split(".")[0], table)
    collect, outside = plan_window(window, config, session, tables, datetime.now(UTC).date())
    lines: list[dict[str, Any]] = []
    reference: dict[tuple[str, date, str], Decimal] = {}
    for account, (project, table) in tables.items():
        for page in session.query(project, query_request(table, account, collect)):
            fields = page["schema"]["fields"]
            for raw in page.get("rows", []):  # BigQuery leaves `rows` out when there are none
                lines.extend(focus_lines(decode(fields, raw)))
        for page in session.query(project, totals_request(table, account, collect)):
            fields = page["schema"]["fields"]
            for raw in page.get("rows", []):
                row = decode(fields, raw)
                key = (row["billing_account_id"], row["usage_day"], row["currency"])
                reference[key] = reference.get(key, _ZERO) + (row["net"] or _ZERO)
    daily = daily_lines(lines)
    get_dagster_logger().info(
        f"GCP: [{collect.start}, {collect.end}) in {session.jobs} BigQuery jobs, "
        f"{session.bytes_processed} bytes processed, {session.bytes_billed} bytes billed"
    )
    frame = pd.DataFrame(daily, columns=None if daily else ["BillingAccountId"])
    return Fetched(
        frame,
        session.requests,
        SOURCE,
        window=collect if collect != window else None,
        reference_totals=reference,
        reference_source=REFERENCE,
        outside_window=outside,
    )


GCP = ProviderSpec(
    provider="gcp",
    title="GCP",
    description=(
        "Daily GCP costs of one customer in FOCUS shape from the BigQuery billing export; "
        "re-reads the recent days and every day an export_time watermark shows as restated "
        "(corrections, late usage), reconciled with BigQuery's own SUM. Fails with "
        "'not configured' for customers without providers.gcp."
    ),
    kinds=frozenset({"gcp", "bigquery"}),
    fetch=fetch_gcp,
    resource=GcpResource(warehouse=ClickHouseResource()),
)
