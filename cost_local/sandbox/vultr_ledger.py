"""What each day should hold for a Vultr account, from the records the local Vultr serves at
its current moment, by Vultr's documented semantics (never by the collector's code):

- an invoice generated in month M+1 bills month M; each of its items is spread evenly over the
  days its period covers within M (a period ending at midnight excludes that day; a period
  outside M lands on M's nearest day); the invoice supersedes any pending charges still shown
  for M;
- a pending charge is what has accrued by now: spread over the days from its start up to now
  (or its end, if earlier), within the month it accrues in; days not yet begun hold nothing;
- a closed month with neither an invoice nor pending charges has no answer (absent here: the
  store keeps what it had);
- shares are rounded half-even to 12 decimals and the last day takes the remainder;
- BilledCost = EffectiveCost = ContractedCost = total (Vultr has no negotiated or commitment
  discounts); ListCost = units x unit_price in whole cents rounded up on usage items, the
  total on credit items (FOCUS: never null; a charge unrelated to others matches BilledCost);
  unit_type "discount" is a Credit, everything else here is Usage.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Decimal
from typing import Any

from cost_local.sandbox.vultr import Served, VultrBilling

QUANTUM = Decimal("1e-12")
COLUMNS = ("BilledCost", "EffectiveCost", "ContractedCost", "ListCost")
# (day, ServiceName, ChargeCategory) -> column -> amount
Ledger = dict[tuple[date, str, str], dict[str, Decimal]]


@dataclass(frozen=True)
class Entry:
    """One item's share of one day."""

    day: date
    service: str
    category: str
    amounts: dict[str, Decimal | None]
    estimated: bool


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _month(day: date) -> tuple[date, date]:
    first = day.replace(day=1)
    return first, (first + timedelta(days=32)).replace(day=1)


def _end_day(moment: datetime) -> date:
    midnight = moment.hour == moment.minute == moment.second == moment.microsecond == 0
    return moment.date() if midnight else moment.date() + timedelta(days=1)


def _days(item: dict[str, Any], month: tuple[date, date], now: datetime | None) -> list[date]:
    start, end = _at(item["start_date"]), _at(item["end_date"])
    if now is not None and now < end:
        end = max(now, start)
    first = max(start.date(), month[0])
    stop = min(_end_day(end) if end > start else start.date() + timedelta(days=1), month[1])
    if now is not None:
        stop = min(stop, _end_day(now))
    if stop <= first:
        first = min(max(start.date(), month[0]), month[1] - timedelta(days=1))
        stop = first + timedelta(days=1)
    return [first + timedelta(days=i) for i in range((stop - first).days)]


def _split(amount: Decimal, parts: int) -> list[Decimal]:
    share = (amount / parts).quantize(QUANTUM, rounding=ROUND_HALF_EVEN)
    return [share] * (parts - 1) + [amount - share * (parts - 1)]


def _entries(item: dict[str, Any], month: tuple[date, date], now: datetime | None) -> list[Entry]:
    total = Decimal(item["total"])
    category = "Credit" if item["unit_type"] == "discount" else "Usage"
    listed = (
        (Decimal(item["units"]) * Decimal(item["unit_price"])).quantize(
            Decimal("0.01"), rounding=ROUND_CEILING
        )
        if category == "Usage"
        else total  # FOCUS: a charge without a list price is at its billed cost
    )
    days = _days(item, month, now)
    billed = _split(total, len(days))
    listing = _split(listed, len(days)) if listed is not None else [None] * len(days)
    return [
        Entry(
            day,
            item["product"],
            category,
            {
                "BilledCost": b,
                "EffectiveCost": b,
                "ContractedCost": b,
                "ListCost": li,
            },
            now is not None,
        )
        for day, b, li in zip(days, billed, listing, strict=True)
    ]


def entries(served: Served, now: datetime) -> list[Entry]:
    """Every item's daily shares, one source per month."""
    out: list[Entry] = []
    invoiced: set[date] = set()
    for invoice in served.invoices:
        issued = _at(invoice["date"]).date().replace(day=1)
        month = _month(issued - timedelta(days=1))
        invoiced.add(month[0])
        for item in served.items[invoice["id"]]:
            out += _entries(item, month, None)
    for item in served.pending:
        start, end = _at(item["start_date"]), _at(item["end_date"])
        month = _month(_end_day(end) - timedelta(days=1) if end > start else start.date())
        if month[0] not in invoiced:
            out += _entries(item, month, now)
    return out


def ledger(vultr: VultrBilling, account: str, start: date, end: date) -> Ledger:
    """Per day, service and charge category of [start, end): each cost column's sum
    (ListCost only where some line has one)."""
    totals: Ledger = defaultdict(dict)
    for entry in entries(vultr.served(account), vultr.now):
        if not start <= entry.day < end:
            continue
        cell = totals[(entry.day, entry.service, entry.category)]
        for column, amount in entry.amounts.items():
            if amount is not None:
                cell[column] = cell.get(column, Decimal(0)) + amount
    return dict(totals)


def estimated_days(vultr: VultrBilling, account: str) -> set[date]:
    return {e.day for e in entries(vultr.served(account), vultr.now) if e.estimated}


def billed_by_month(book: Ledger) -> dict[str, Decimal]:
    out: dict[str, Decimal] = defaultdict(Decimal)
    for (day, _, _), cell in book.items():
        out[day.strftime("%Y-%m")] += cell["BilledCost"]
    return dict(out)
