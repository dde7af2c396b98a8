"""The AWS side of the sandbox, on moto's server: Cost Explorer answers queued through
`/moto-api/static/ce/cost-and-usage-results` (Data Exports files: sandbox/aws_exports.py).

The answers are made from the AWS records of sandbox/aws_billing.py (reserved instance, savings
plan, credits, a refund, tax). moto hands queued results out first-in first-out, one per distinct
request body, and answers a repeated body with the result it gave it before. So the results are
queued in the order the `aws_costs` collector sends its requests: the linked-account totals'
pages, then per account (in id order) the usage query's pages and the other record types' pages;
a follow-up page is a new body because it carries NextPageToken."""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from cost_local.sandbox.aws_billing import USAGE_RECORD_TYPES, AwsRecord, aws_records
from cost_local.sandbox.bills import GeneratedLine

MOTO_ACCOUNT = "123456789012"  # moto's default account: where unsigned-to-IAM keys land
_ZERO = Decimal(0)


def _post(endpoint_url: str, path: str, body: dict[str, Any] | None = None) -> None:
    request = urllib.request.Request(
        endpoint_url.rstrip("/") + path,
        data=json.dumps(body or {}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        if answer.status not in (200, 201):
            raise RuntimeError(f"moto answered {answer.status} to {path}")


def reset_moto(endpoint_url: str) -> None:
    """Forget every queued and already-served result (and all other moto state)."""
    _post(endpoint_url, "/moto-api/reset")


def queue_cost_and_usage(
    endpoint_url: str, results: Sequence[dict[str, Any]], account_id: str = MOTO_ACCOUNT
) -> None:
    """Queue GetCostAndUsage answers, in the order the requests will come, for the AWS account
    whose keys will ask (moto's default account unless the keys belong to another)."""
    _post(
        endpoint_url,
        "/moto-api/static/ce/cost-and-usage-results",
        {"results": list(results), "account_id": account_id},
    )


def _money(amount: Decimal, unit: str) -> dict[str, str]:
    return {"Amount": format(amount, "f"), "Unit": unit}


def _days(start: date, end: date) -> list[str]:
    return [(start + timedelta(days=i)).isoformat() for i in range((end - start).days)]


def _pages(
    days: list[str],
    groups: dict[str, list[dict[str, Any]]],
    page_size: int,
    estimated_from: date | None,
) -> list[dict[str, Any]]:
    """Cut (day, group) entries into pages of at most page_size groups, like Cost Explorer."""
    entries: list[tuple[str, dict[str, Any] | None]] = []
    for day in days:
        # A day without costs still appears, with no groups, as Cost Explorer answers it.
        entries.extend([(day, group) for group in groups.get(day, [])] or [(day, None)])
    pages: list[dict[str, Any]] = []
    for offset in range(0, max(len(entries), 1), page_size):
        by_day: dict[str, list[dict[str, Any]]] = {}
        for day, group in entries[offset : offset + page_size]:
            by_day.setdefault(day, [])
            if group is not None:
                by_day[day].append(group)
        pages.append(
            {
                "ResultsByTime": [
                    {
                        "TimePeriod": {
                            "Start": day,
                            "End": (date.fromisoformat(day) + timedelta(days=1)).isoformat(),
                        },
                        "Total": {},
                        "Groups": day_groups,
                        "Estimated": estimated_from is not None
                        and date.fromisoformat(day) >= estimated_from,
                    }
                    for day, day_groups in by_day.items()
                ],
                "DimensionValueAttributes": [],
            }
        )
    for number, page in enumerate(pages[:-1], start=2):
        page["NextPageToken"] = f"page-{number}-{uuid.uuid4().hex[:8]}"
    return pages


def _metrics(records: list[AwsRecord], *, quantity: bool) -> dict[str, dict[str, str]]:
    unit = records[0].currency
    metrics = {
        "UnblendedCost": _money(sum((r.unblended for r in records), _ZERO), unit),
        "NetAmortizedCost": _money(sum((r.net_amortized for r in records), _ZERO), unit),
    }
    units = {r.pricing_unit for r in records if r.pricing_unit}
    metrics["UsageQuantity"] = _money(
        sum((r.usage_quantity for r in records), _ZERO) if quantity else _ZERO,
        units.pop() if len(units) == 1 else "N/A",
    )
    return metrics


def _grouped(records: Iterable[AwsRecord], second_key: str) -> dict[str, list[dict[str, Any]]]:
    """Per day, one group per (SERVICE, second key) with its summed metrics."""
    cells: dict[tuple[str, str, str], list[AwsRecord]] = defaultdict(list)
    for record in records:
        cells[(record.day.isoformat(), record.service, getattr(record, second_key))].append(record)
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for (day, service, key), items in sorted(cells.items()):
        groups[day].append(
            {
                "Keys": [service, key],
                "Metrics": _metrics(items, quantity=second_key == "usage_type"),
            }
        )
    return groups


def cost_explorer_results(
    lines: Iterable[GeneratedLine],
    start: date,
    end: date,
    *,
    page_size: int = 500,
    estimated_from: date | None = None,
    reference_shift: Decimal = _ZERO,
    lose_usage_day: date | None = None,
    lose_charges_day: date | None = None,
) -> list[dict[str, Any]]:
    """GetCostAndUsage answers for the AWS records of [start, end), in the collector's order:
    the linked accounts' daily totals (all record types), then per account (in id order) its
    usage record types by SERVICE and USAGE_TYPE, then its other record types by SERVICE and
    RECORD_TYPE, from the 1st of the window's first month (the collector asks from there, for
    the monthly fees dated before the window). `reference_shift` changes the first account's
    first daily total (as if Cost Explorer's ungrouped total disagreed); `lose_usage_day`
    answers that day of every usage query with no groups (as if a page had been lost),
    `lose_charges_day` that day of every other-record-types query."""
    every = aws_records(lines)
    records = [r for r in every if start <= r.day < end]
    charges_from = start.replace(day=1)
    charges = [r for r in every if charges_from <= r.day < end]
    days, charge_days = _days(start, end), _days(charges_from, end)
    names = {r.sub_account_id: r.sub_account_name for r in records}
    totals: dict[tuple[str, str], list[AwsRecord]] = defaultdict(list)
    for record in records:
        totals[(record.day.isoformat(), record.sub_account_id)].append(record)
    discovery_groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for index, ((day, account), items) in enumerate(sorted(totals.items())):
        unblended = sum((r.unblended for r in items), _ZERO) + (reference_shift if not index else 0)
        discovery_groups[day].append(
            {"Keys": [account], "Metrics": {"UnblendedCost": _money(unblended, items[0].currency)}}
        )
    results = _pages(days, discovery_groups, page_size, estimated_from)
    results[0]["DimensionValueAttributes"] = [
        {"Value": account, "Attributes": {"description": names[account]}}
        for account in sorted(names)
    ]
    for account in sorted(names):
        own = [r for r in records if r.sub_account_id == account]
        usage = _grouped((r for r in own if r.record_type in USAGE_RECORD_TYPES), "usage_type")
        if lose_usage_day is not None:
            usage.pop(lose_usage_day.isoformat(), None)
        other = _grouped(
            (
                r
                for r in charges
                if r.sub_account_id == account and r.record_type not in USAGE_RECORD_TYPES
            ),
            "record_type",
        )
        if lose_charges_day is not None:
            other.pop(lose_charges_day.isoformat(), None)
        results.extend(_pages(days, usage, page_size, estimated_from))
        results.extend(_pages(charge_days, other, page_size, estimated_from))
    return results


def seed_cost_explorer(
    endpoint_url: str,
    lines: Iterable[GeneratedLine],
    start: date,
    end: date,
    *,
    page_size: int = 500,
    estimated_from: date | None = None,
) -> int:
    """Queue the answers one `aws_costs` run over [start, end) will ask for; returns how many."""
    results = cost_explorer_results(
        lines, start, end, page_size=page_size, estimated_from=estimated_from
    )
    queue_cost_and_usage(endpoint_url, results)
    return len(results)
