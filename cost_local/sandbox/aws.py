"""The AWS side of the sandbox, on moto's server: Cost Explorer answers queued through
`/moto-api/static/ce/cost-and-usage-results` (Data Exports files: sandbox/aws_exports.py).

moto hands queued results out first-in first-out, one per distinct request body, and answers a
repeated body with the result it gave it before. So the results are queued in exactly the order
the `aws_costs` collector sends its requests: the linked-account query's pages, then each account
(in id order) page by page; a follow-up page is a new body because it carries NextPageToken."""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from cost_local.sandbox.bills import GeneratedLine

MOTO_ACCOUNT = "123456789012"  # moto's default account: where unsigned-to-IAM keys land
_ZERO = Decimal(0)
_Cell = tuple[str, str, str, str]  # day, linked account, service, usage type


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


def queue_cost_and_usage(endpoint_url: str, results: Sequence[dict[str, Any]]) -> None:
    """Queue GetCostAndUsage answers, in the order the requests will come."""
    _post(
        endpoint_url,
        "/moto-api/static/ce/cost-and-usage-results",
        {"results": list(results), "account_id": MOTO_ACCOUNT},
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


def cost_explorer_results(
    lines: Iterable[GeneratedLine],
    start: date,
    end: date,
    *,
    page_size: int = 500,
    estimated_from: date | None = None,
) -> list[dict[str, Any]]:
    """GetCostAndUsage answers for the AWS lines of [start, end), in the collector's order:
    linked accounts first, then each account's costs by SERVICE and USAGE_TYPE."""
    cells: dict[_Cell, list[GeneratedLine]] = defaultdict(list)
    names: dict[str, str] = {}
    for line in lines:
        if line.provider == "aws" and start <= line.charge_date < end:
            key = (line.charge_date.isoformat(), line.sub_account_id, line.service_name)
            cells[(*key, line.usage_type)].append(line)
            names[line.sub_account_id] = line.sub_account_name
    days = _days(start, end)
    per_account: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    currency: dict[str, str] = {}
    detail: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for (day, account, service, usage_type), items in sorted(cells.items()):
        unit = items[0].currency
        billed = sum((i.billed_cost for i in items), _ZERO)
        per_account[(day, account)] += billed
        currency[account] = unit
        metrics = {
            "UnblendedCost": _money(billed, unit),
            "NetUnblendedCost": _money(billed, unit),
            "NetAmortizedCost": _money(sum((i.effective_cost for i in items), _ZERO), unit),
            "UsageQuantity": _money(
                sum((i.pricing_quantity for i in items), _ZERO), items[0].pricing_unit or "N/A"
            ),
        }
        detail[account][day].append({"Keys": [service, usage_type], "Metrics": metrics})
    discovery_groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for (day, account), billed in sorted(per_account.items()):
        discovery_groups[day].append(
            {"Keys": [account], "Metrics": {"UnblendedCost": _money(billed, currency[account])}}
        )
    discovery = _pages(days, discovery_groups, page_size, estimated_from)
    discovery[0]["DimensionValueAttributes"] = [
        {"Value": account, "Attributes": {"description": names[account]}}
        for account in sorted(names)
    ]
    results = discovery
    for account in sorted(names):
        results.extend(_pages(days, detail[account], page_size, estimated_from))
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
