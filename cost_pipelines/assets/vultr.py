"""Vultr costs per customer from billing invoices (closed months) and pending charges (the open
month so far, x_Estimated), in FOCUS shape.

What Vultr documents, and what this collector makes of it:
- Invoice items and pending charges each cover a period (`start_date` .. `end_date`), one item
  per resource, plan and month. Each item is spread over the days it covers (`spread_daily`:
  the days add up to its `total` to the last decimal, marked x_SpreadPeriodStart/End). An
  `end_date` at midnight is exclusive; any later instant covers its day.
- Invoices are generated on the 1st for the previous month, so an invoice dated in month M+1
  bills month M; its items are attributed to M (their days clamped to M: an item whose
  `start_date` lies before M, e.g. a resource created earlier, is billed in M and kept).
- Pending charges are what has accrued so far. Their `end_date` may be the current moment or
  the month's end; either way only the days up to now are attributed: the accrued total is
  spread over the days from `start_date` to now, and the days not yet passed get nothing, so
  the stored month to date equals Vultr's pending total exactly. Each run spreads the new
  total again (the window always covers the month to date).
- Per month exactly one source: a month with an invoice uses its items and drops any pending
  charges still shown for it (Vultr has not reset them yet); a month without an invoice uses the
  pending charges of that month; a closed month with neither (pending already reset, invoice
  not listed yet) is not answered: the window shrinks to after it (`Fetched.window`) so the
  month keeps its last estimate instead of being replaced by nothing.

ChargeCategory from the item kind (`unit_type`, documented values "hours", "overage",
"discount"): "discount" is Credit; a tax line (Vultr adds VAT/sales tax as its own line item)
is Tax; an undocumented kind with a negative total is Credit (the review finds the sign
reasonable for Vultr's few negative lines); everything else is Usage. x_ChargeType keeps the
kind as Vultr sent it.

Cost columns: BilledCost is the item's `total`. Vultr has no negotiated and no commitment
discounts, so ContractedCost and EffectiveCost equal BilledCost. ListCost is `units x
unit_price` (the hourly rate without the monthly cap of 672 hours; Vultr's totals are whole
cents rounded up, so ListCost is too) on usage lines where both are given; a credit or tax
line has no list price and, as FOCUS requires, its ListCost is its BilledCost. Vultr bills in
USD. Items carry no region or resource id.

Reconciliation: Vultr has no per-day total. The independent totals are per month: each
invoice's `amount` and, for the open month, `pending_charges` of /v2/account. The reference
holds the stored spread on every day and puts the month's difference (independent total minus
the items) on the month's last collected day, so a mismatch fails `reconciles_with_provider`
naming account, that day and the difference. Day lines of a fetched month that fall outside
the window (a window starting mid-month) are not stored and are counted in `outside_window`.

Names: /v2/account's `name` is both BillingAccountName and SubAccountName (an API key reaches
one account, which is its own sub-account). Vultr has no tags: its lines carry none.

Requests per run: the invoice list (one page of up to 500), one items request per invoice of a
month in the window, the pending charges and /v2/account: 4 for the default window.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_CEILING, Decimal
from typing import Any

import pandas as pd

from cost_pipelines.assets.collection import DateWindow, Fetched, ProviderSpec
from cost_pipelines.customers import VultrConfig
from cost_pipelines.focus.service_categories import service_category
from cost_pipelines.focus.spread import spread_daily
from cost_pipelines.resources.rest import ApiRefused
from cost_pipelines.resources.vultr import VultrResource, VultrSession

SOURCE = "vultr_billing"
REFERENCE = "Vultr invoice amount / account pending_charges (per month)"
CURRENCY = "USD"
CENT = Decimal("0.01")
_TAX_PRODUCTS = frozenset({"tax", "vat", "sales tax", "gst", "consumption tax"})
# The columns that make two lines of one day the same line (checks.LINE_KEY's stored part).
_KEY = ("ServiceName", "ChargeCategory", "x_ChargeType", "PricingUnit", "ChargeDescription")
_AMOUNTS = ("BilledCost", "EffectiveCost", "ContractedCost", "ListCost", "PricingQuantity")


def utc_now() -> datetime:
    """The collector's clock: how far pending charges have accrued (tests set it)."""
    return datetime.now(UTC)


def _instant(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _day_after(moment: datetime) -> date:
    """The exclusive end day of a period ending at `moment` (midnight is exclusive)."""
    return moment.date() if moment.time() == time(0) else moment.date() + timedelta(days=1)


def month_of(day: date) -> DateWindow:
    first = day.replace(day=1)
    return DateWindow(first, (first + timedelta(days=32)).replace(day=1))


def invoice_month(invoice: dict[str, Any]) -> DateWindow:
    """An invoice generated in month M+1 (on the 1st, or days later) bills month M."""
    issued = _instant(invoice["date"]).date()
    return month_of(issued.replace(day=1) - timedelta(days=1))


def covered(item: dict[str, Any]) -> tuple[datetime, datetime]:
    """The item's period [start, end) as instants; an empty period is its start's day."""
    start = _instant(item["start_date"])
    end = _instant(item["end_date"]) if item.get("end_date") else start
    return start, max(end, start)


def pending_month(item: dict[str, Any]) -> DateWindow:
    """The month a pending charge accrues in: the month of the last instant it covers."""
    start, end = covered(item)
    return month_of(_day_after(end) - timedelta(days=1) if end > start else start.date())


def attributed_days(
    item: dict[str, Any], month: DateWindow, until: datetime | None = None
) -> tuple[date, date]:
    """The days [first, end) the item is attributed to: its period clamped to its billing month
    (and, for pending charges, to the days that have begun by `until`); never empty."""
    start, end = covered(item)
    if until is not None:
        end = min(end, max(until, start))
    first = max(start.date(), month.start)
    last = min(_day_after(end) if end > start else start.date() + timedelta(days=1), month.end)
    if until is not None:
        last = min(last, _day_after(until))
    if last <= first:  # entirely outside the month: its nearest day of the month
        day = min(max(start.date(), month.start), month.end - timedelta(days=1))
        return day, day + timedelta(days=1)
    return first, last


def charge_category(item: dict[str, Any]) -> str:
    kind = str(item.get("unit_type") or "").strip().lower()
    if kind == "discount":
        return "Credit"
    if str(item.get("product") or "").strip().lower() in _TAX_PRODUCTS:
        return "Tax"
    return "Credit" if Decimal(str(item["total"])) < 0 else "Usage"


def list_cost(item: dict[str, Any], category: str) -> Decimal:
    """units x unit_price for usage; FOCUS never has a null ListCost, so a line without a list
    price (a credit, tax, an item without units) is at its billed total."""
    if category != "Usage" or item.get("units") is None or item.get("unit_price") is None:
        return Decimal(str(item["total"]))
    raw = Decimal(str(item["units"])) * Decimal(str(item["unit_price"]))
    return raw.quantize(CENT, rounding=ROUND_CEILING)


def focus_lines(
    account: str,
    item: dict[str, Any],
    month: DateWindow,
    *,
    estimated: bool,
    until: datetime | None = None,
) -> list[dict[str, Any]]:
    """The item as FOCUS lines, one per day it is attributed to."""
    total = Decimal(str(item["total"]))
    category = charge_category(item)
    product = str(item.get("product") or "")
    units = item.get("units")
    line = {
        "BillingAccountId": account,
        "SubAccountId": account,
        "ProviderName": "Vultr",
        "BillingPeriodStart": datetime.combine(month.start, time(0), UTC),
        "BillingPeriodEnd": datetime.combine(month.end, time(0), UTC),
        "ServiceName": product,
        "ServiceCategory": service_category("vultr", product),
        "ChargeCategory": category,
        "x_ChargeType": str(item.get("unit_type") or ""),
        "ChargeDescription": str(item.get("description") or ""),
        "ResourceName": str(item.get("description") or ""),
        "BilledCost": total,
        "EffectiveCost": total,
        "ContractedCost": total,
        "ListCost": list_cost(item, category),
        "PricingQuantity": Decimal(str(units))
        if units is not None and category == "Usage"
        else None,
        "PricingUnit": str(item.get("unit_type") or "") if category == "Usage" else "",
        "BillingCurrency": CURRENCY,
        "x_Estimated": estimated,
    }
    first, end = attributed_days(item, month, until)
    return spread_daily(line, first, end)


def merged(lines: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Lines of one day with the same key (an instance upgraded mid-day shows as two items with
    one description) summed into one, so no line key is stored twice."""
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for line in lines:
        key = (line["BillingAccountId"], line["ChargePeriodStart"], *(line[k] for k in _KEY))
        if key not in out:
            out[key] = dict(line)
            continue
        into = out[key]
        for column in _AMOUNTS:
            ours, theirs = into.get(column), line.get(column)
            into[column] = theirs if ours is None else ours if theirs is None else ours + theirs
        for column, pick in (("x_SpreadPeriodStart", min), ("x_SpreadPeriodEnd", max)):
            values = [v for v in (into.get(column), line.get(column)) if v is not None]
            into[column] = pick(values) if values else None
    return list(out.values())


@dataclass
class _Month:
    """One billing month's answer: its lines and Vultr's own total for it."""

    month: DateWindow
    lines: list[dict[str, Any]] = field(default_factory=list)
    total: Decimal | None = None  # independent: invoice amount / pending total


def _invoices(
    session: VultrSession, window: DateWindow
) -> tuple[list[dict[str, Any]], date | None]:
    """The invoices whose month meets the window (newest first: paging stops at the first
    invoice older than the window), and the newest invoice's month."""
    found: list[dict[str, Any]] = []
    newest: date | None = None
    for invoices in session.pages("/v2/billing/invoices", "billing_invoices"):
        for invoice in invoices:
            month = invoice_month(invoice)
            newest = month.start if newest is None else max(newest, month.start)
            if month.end <= window.start:
                return found, newest
            if month.start < window.end:
                found.append(invoice)
    return found, newest


def _months(window: DateWindow) -> list[DateWindow]:
    out, day = [], window.start
    while day < window.end:
        out.append(month_of(day))
        day = out[-1].end
    return out


def _answered_window(
    window: DateWindow, invoiced: set[date], pending: set[date], newest: date | None, now: date
) -> DateWindow:
    """The window without closed months Vultr answers for with neither an invoice nor pending
    charges (pending reset before the invoice is listed): they keep their last estimate. A month
    older than the newest invoice with no invoice had nothing to bill."""
    open_month = month_of(now).start
    unanswered = [
        m
        for m in _months(window)
        if m.start < open_month
        and m.start not in invoiced
        and m.start not in pending
        and (newest is None or m.start > newest)
    ]
    if not unanswered:
        return window
    start = max(m.end for m in unanswered)
    if start >= window.end:
        months = ", ".join(f"{m.start:%Y-%m}" for m in unanswered)
        raise ApiRefused(
            f"Vultr lists neither an invoice nor pending charges for {months} yet (the invoice "
            "is not issued yet); the stored estimate is kept, collect again later"
        )
    return DateWindow(max(start, window.start), window.end)


def reference_totals(
    account: str, months: Iterable[_Month], window: DateWindow
) -> dict[tuple[str, date, str], Decimal]:
    """Per day the lines' spread; on each month's last collected day also the difference
    between Vultr's independent month total and the month's items."""
    reference: dict[tuple[str, date, str], Decimal] = defaultdict(Decimal)
    for answer in months:
        for line in answer.lines:
            day = line["ChargePeriodStart"].date()
            if window.start <= day < window.end:
                reference[(account, day, CURRENCY)] += line["BilledCost"]
        if answer.total is None:
            continue
        items = sum((line["BilledCost"] for line in answer.lines), Decimal(0))
        in_window = [
            line["ChargePeriodStart"].date()
            for line in answer.lines
            if window.start <= line["ChargePeriodStart"].date() < window.end
        ]
        last = max(in_window, default=min(answer.month.end, window.end) - timedelta(days=1))
        if answer.total != items and window.start <= last < window.end:
            reference[(account, last, CURRENCY)] += answer.total - items
    return dict(reference)


def fetch_vultr(window: DateWindow, config: VultrConfig, session: VultrSession) -> Fetched:
    """Invoice items and pending charges attributed to the days of the window, one source per
    month; the window shrinks past a closed month Vultr answers for with neither."""
    if len(config.billing_account_ids) != 1:
        raise ApiRefused("a Vultr API key reaches one account: give exactly one billing account id")
    account = config.billing_account_ids[0]
    now = utc_now()
    invoices, newest = _invoices(session, window)
    pending = session.pending_charges()
    name, pending_total = session.account()
    by_month: dict[date, list[dict[str, Any]]] = defaultdict(list)
    for invoice in invoices:
        by_month[invoice_month(invoice).start].append(invoice)
    pending_by_month: dict[date, list[dict[str, Any]]] = defaultdict(list)
    for item in pending:
        pending_by_month[pending_month(item).start].append(item)
    answered = _answered_window(window, set(by_month), set(pending_by_month), newest, now.date())

    months: list[_Month] = []
    for start, month_invoices in sorted(by_month.items()):
        month = month_of(start)
        if month.end <= answered.start:
            continue  # not answered for (see _answered_window): no items needed
        answer = _Month(
            month, total=sum((Decimal(str(i["amount"])) for i in month_invoices), Decimal(0))
        )
        for invoice in month_invoices:
            path = f"/v2/billing/invoices/{invoice['id']}/items"
            for items in session.pages(path, "invoice_items"):
                for item in items:
                    answer.lines += focus_lines(account, item, month, estimated=False)
        months.append(answer)
    # The open month's independent total: the account's pending charges, less the pending
    # items of any other month (a month whose pending charges have not reset yet).
    pending_months = sorted(m for m in pending_by_month if m not in by_month)
    latest = pending_months[-1] if pending_months else None
    for start in pending_months:
        month = month_of(start)
        answer = _Month(month)
        for item in pending_by_month[start]:
            answer.lines += focus_lines(account, item, month, estimated=True, until=now)
        if start == latest and pending_total is not None:
            others = sum(
                (
                    Decimal(str(i["total"]))
                    for m, items in pending_by_month.items()
                    if m != start
                    for i in items
                ),
                Decimal(0),
            )
            answer.total = pending_total - others
        months.append(answer)
    if latest is None and not pending and pending_total:
        open_month = month_of(now.date())
        if open_month.start not in by_month:
            months.append(_Month(open_month, total=pending_total))

    lines = [line for answer in months for line in answer.lines]
    kept = [
        line for line in lines if answered.start <= line["ChargePeriodStart"].date() < answered.end
    ]
    rows = merged(kept)
    for row in rows:  # one API key, one account: it is its own billing and sub-account
        row["BillingAccountName"] = row["SubAccountName"] = name
    frame = pd.DataFrame(rows, columns=None if rows else ["BillingAccountId"])
    return Fetched(
        frame,
        session.requests,
        SOURCE,
        window=answered if answered != window else None,
        reference_totals=reference_totals(account, months, answered),
        reference_source=REFERENCE,
        outside_window=len(lines) - len(kept),
    )


VULTR = ProviderSpec(
    provider="vultr",
    title="Vultr",
    description=(
        "Daily Vultr costs of one customer in FOCUS shape from invoices (closed months) and "
        "pending charges (the open month, estimated), each item spread over the days it covers; "
        "re-collects the current and the previous invoice period. Fails with 'not configured' "
        "for customers without providers.vultr."
    ),
    kinds=frozenset({"vultr"}),
    fetch=fetch_vultr,
    resource=VultrResource(),
)
