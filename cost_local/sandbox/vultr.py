"""A local Vultr billing API (v2) that behaves like Vultr's billing data: monthly invoices with
their items, the open month's pending charges, the account's pending total; Bearer API keys,
per_page + cursor paging, ~30 requests a second then 429.

What the bills look like (derived from the generated daily lines):
- one item per resource and plan per month, covering the hours the resource ran that month
  (`start_date` .. `end_date`): whole-month items and items of resources created mid-month;
  hourly charges capped at 672 hours a month (Vultr's monthly rate), totals in whole cents
  rounded up; a bandwidth `overage` item and a promotional `discount` item (negative) a month;
- invoices generated for the previous month on the 1st, newest first, `amount` the sum of the
  items (unless told to misstate one); pending charges: what has accrued so far this month,
  `end_date` the moment of accrual ("now") or the month's end ("month_end");
- the handover on the 1st with a configurable lag (`Handover`): the invoice may be listed
  hours or days after the month ended, and pending charges may keep showing the previous
  month for a while; an invoice lag longer than the pending holdover leaves a gap in which the
  previous month has neither (pending already reset, no invoice yet).

The clock is `now` (`today` is its day): charges accrue up to the last midnight. What each
day should hold is in `cost_local.sandbox.vultr_ledger`, computed from the served records.
"""

from __future__ import annotations

import base64
import re
import time
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_CEILING, Decimal
from typing import Any, Literal

from cost_local.sandbox.bills import GeneratedLine
from cost_local.sandbox.simulator import Request, Response, Simulator

MAX_PER_PAGE = 500
MONTHLY_CAP_HOURS = 672  # Vultr: servers are billed hourly up to 672 hours a month
CENT = Decimal("0.01")
OVERAGE_PRICE = Decimal("0.01")  # per GB of bandwidth over the plans' allowance
_ITEMS = re.compile(r"^/v2/billing/invoices/(?P<id>\d+)/items$")
_INVOICE = re.compile(r"^/v2/billing/invoices/(?P<id>\d+)$")
PendingEnd = Literal["now", "month_end"]


@dataclass(frozen=True)
class Handover:
    """How Vultr hands a closed month from pending charges to its invoice."""

    invoice_lag: timedelta = timedelta(0)  # the invoice is listed this long after month end
    pending_holdover: timedelta = timedelta(0)  # pending shows the closed month this long


@dataclass(frozen=True)
class Served:
    """What Vultr shows one account at one moment."""

    invoices: list[dict[str, Any]]  # newest first
    items: dict[int, list[dict[str, Any]]]  # invoice id -> its items
    pending: list[dict[str, Any]]
    pending_misstated: Decimal = Decimal(0)  # /v2/account's total less the items

    @property
    def pending_total(self) -> Decimal:
        return sum((Decimal(i["total"]) for i in self.pending), Decimal(0))


class VultrError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.response = Response(status, {"error": message, "status": status})


def _midnight(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), UTC)


def _month_end(month: date) -> date:
    return (month + timedelta(days=32)).replace(day=1)


class VultrBilling(Simulator):
    """Vultr's billing endpoints for the accounts behind the given API keys."""

    def __init__(
        self,
        api_keys: Mapping[str, str],  # API key -> account id (a line's billing_account_id)
        lines: Iterable[GeneratedLine] = (),
        *,
        today: date | None = None,
        now: datetime | None = None,
        handover: Handover = Handover(),
        pending_end: PendingEnd = "now",
        start_at_creation: bool = False,
        discount_rate: Decimal = Decimal("0.05"),
        requests_per_second: int = 30,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host=host, port=port)
        self.api_keys = dict(api_keys)
        self.now = now or _midnight(today or datetime.now(UTC).date())
        self.handover = handover
        self.pending_end: PendingEnd = pending_end
        # Items of resources created before the month carry the creation day as start_date.
        self.start_at_creation = start_at_creation
        self.discount_rate = discount_rate
        self.requests_per_second = requests_per_second
        self._recent: dict[str, deque[float]] = defaultdict(deque)
        self._forced_throttles = 0
        self._misstated: dict[tuple[str, date], Decimal] = {}
        self._pending_delta: dict[str, Decimal] = {}
        self.names: dict[str, str] = {}  # account id -> the account's name (/v2/account)
        self.set_lines(lines)

    @property
    def today(self) -> date:
        return self.now.date()

    @today.setter
    def today(self, day: date) -> None:
        self.now = _midnight(day)

    def set_lines(self, lines: Iterable[GeneratedLine]) -> None:
        """Replace the bills (e.g. when a pending month changes or closes)."""
        months: dict[tuple[str, date], list[GeneratedLine]] = defaultdict(list)
        created: dict[tuple[str, str], date] = {}
        names: dict[str, str] = {}
        for line in lines:
            if line.provider != "vultr":
                continue
            names[line.billing_account_id] = line.billing_account_name
            months[(line.billing_account_id, line.charge_date.replace(day=1))].append(line)
            key = (line.resource_id, line.sku_id)
            created[key] = min(created.get(key, line.charge_date), line.charge_date)
        with self.lock:
            self._months, self._created = dict(months), created
            self.names.update(names)

    def misstate_invoice(self, account: str, month: date, delta: Decimal) -> None:
        """Make the invoice of `month` report an amount `delta` away from its items."""
        with self.lock:
            self._misstated[(account, month.replace(day=1))] = delta

    def misstate_pending_total(self, account: str, delta: Decimal) -> None:
        """Make /v2/account report pending charges `delta` away from the pending items."""
        with self.lock:
            self._pending_delta[account] = delta

    def served(self, account: str) -> Served:
        """The invoices, items and pending charges Vultr shows the account now."""
        with self.lock:
            now, months = self.now, self._months
            this_month = now.date().replace(day=1)
            invoices: list[dict[str, Any]] = []
            items: dict[int, list[dict[str, Any]]] = {}
            pending: list[dict[str, Any]] = []
            closed = sorted(m for a, m in months if a == account and m < this_month)
            for month in closed:
                issued = _midnight(_month_end(month)) + self.handover.invoice_lag
                month_items = self._items(months[(account, month)], month, None)
                if now >= issued:
                    invoice_id = 10_000_000 + int(month.strftime("%Y%m")) * 10
                    amount = sum((i["total"] for i in month_items), Decimal(0))
                    items[invoice_id] = month_items
                    invoices.insert(0, {  # newest first, as Vultr lists them
                        "id": invoice_id,
                        "date": issued.isoformat(),
                        "description": f"Invoice #{invoice_id}",
                        "amount": amount + self._misstated.get((account, month), Decimal(0)),
                        "balance": Decimal(0),
                    })  # fmt: skip
            previous = (this_month - timedelta(days=1)).replace(day=1)
            holding = now < _midnight(this_month) + self.handover.pending_holdover
            if holding and (account, previous) in months:
                pending = self._items(months[(account, previous)], previous, None)
            elif (account, this_month) in months:
                accrued = [x for x in months[(account, this_month)] if x.charge_date < now.date()]
                pending = self._items(accrued, this_month, now) if accrued else []
            return Served(invoices, items, pending, self._pending_delta.get(account, Decimal(0)))

    def _items(
        self, lines: list[GeneratedLine], month: date, now: datetime | None
    ) -> list[dict[str, Any]]:
        """One item per resource and plan over the month (`now`: the open month so far)."""
        grouped: dict[tuple[str, str], list[GeneratedLine]] = defaultdict(list)
        for line in lines:
            grouped[(line.resource_id, line.sku_id)].append(line)
        last_day = _month_end(month) - timedelta(days=1)
        accrued_to = now.date() if now is not None else _month_end(month)
        month_end = f"{last_day.isoformat()}T23:59:59+00:00"
        until = month_end if now is None or self.pending_end == "month_end" else None
        out: list[dict[str, Any]] = []
        for key, group in sorted(grouped.items()):
            first = min(x.charge_date for x in group)
            last = max(x.charge_date for x in group)
            if self.start_at_creation:
                first = self._created.get(key, first)
            running = last + timedelta(days=1) >= accrued_to
            end = (until if running else None) or _midnight(last + timedelta(days=1)).isoformat()
            units = sum((x.pricing_quantity for x in group), Decimal(0))
            price = group[0].list_unit_price
            charged = min(
                sum((x.billed_cost for x in group), Decimal(0)), MONTHLY_CAP_HOURS * price
            )
            out.append({
                "description": f"{group[0].resource_name} ({group[0].sku_id})",
                "product": group[0].service_name,
                "start_date": _midnight(first).isoformat(),
                "end_date": end,
                "units": units,
                "unit_type": "hours",
                "unit_price": price,
                "total": charged.quantize(CENT, rounding=ROUND_CEILING),
            })  # fmt: skip
        if not out:
            return out
        period_end = until or _midnight(accrued_to).isoformat()
        start = _midnight(month).isoformat()
        gigabytes = Decimal(sum(len(x.resource_name) for x in lines) % 400 + 25)
        out.append({
            "description": "Bandwidth overage",
            "product": "Bandwidth",
            "start_date": start,
            "end_date": period_end,
            "units": gigabytes,
            "unit_type": "overage",
            "unit_price": OVERAGE_PRICE,
            "total": gigabytes * OVERAGE_PRICE,
        })  # fmt: skip
        compute = sum((i["total"] for i in out if i["product"] == "Cloud Compute"), Decimal(0))
        discount = (compute * self.discount_rate).quantize(CENT, rounding=ROUND_CEILING)
        if discount:
            out.append({
                "description": f"Promotional discount {self.discount_rate * 100:.0f}%",
                "product": "Cloud Compute",
                "start_date": start,
                "end_date": period_end,
                "units": Decimal(1),
                "unit_type": "discount",
                "unit_price": -discount,
                "total": -discount,
            })  # fmt: skip
        return out

    def throttle(self, times: int = 1) -> None:
        """Answer the next `times` requests with 429, as when the rate limit is exceeded."""
        with self.lock:
            self._forced_throttles += times

    def handle(self, request: Request) -> Response:
        try:
            account = self._account(request)
            self._check_rate(request.bearer() or "")
            if request.method != "GET":
                raise VultrError(405, "Method not allowed.")
            served = self.served(account)
            own = {invoice["id"] for invoice in served.invoices}
            if request.path == "/v2/billing/invoices":
                return _paged("billing_invoices", served.invoices, request.query)
            if request.path == "/v2/billing/pending-charges":
                return Response(200, {"pending_charges": served.pending})
            if request.path == "/v2/account":
                name = self.names.get(account, f"account {account[:8]}")
                return Response(200, {"account": _account_body(name, served)})
            if (match := _ITEMS.match(request.path)) and int(match["id"]) in own:
                return _paged("invoice_items", served.items[int(match["id"])], request.query)
            if (match := _INVOICE.match(request.path)) and int(match["id"]) in own:
                found = next(i for i in served.invoices if i["id"] == int(match["id"]))
                return Response(200, {"billing_invoice": found})
            if _ITEMS.match(request.path) or _INVOICE.match(request.path):
                raise VultrError(404, "Invoice not found.")
            raise VultrError(404, f"Not found: {request.path}")
        except VultrError as error:
            return error.response

    def _account(self, request: Request) -> str:
        account = self.api_keys.get(request.bearer() or "")
        if account is None:
            raise VultrError(401, "Invalid API token.")
        return account

    def _check_rate(self, key: str) -> None:
        now = time.monotonic()
        with self.lock:
            if self._forced_throttles:
                self._forced_throttles -= 1
                raise VultrError(429, "Rate limit exceeded.")
            recent = self._recent[key]
            while recent and recent[0] <= now - 1:
                recent.popleft()
            if len(recent) >= self.requests_per_second:
                raise VultrError(429, "Rate limit exceeded.")
            recent.append(now)


def _account_body(name: str, served: Served) -> dict[str, Any]:
    return {
        "name": name,
        "email": "billing@example.com",
        "acls": ["billing"],
        "balance": -served.pending_total,
        "pending_charges": served.pending_total + served.pending_misstated,
        "last_payment_date": served.invoices[0]["date"] if served.invoices else "",
        "last_payment_amount": -served.invoices[0]["amount"] if served.invoices else 0,
    }


def _paged(name: str, items: list[dict[str, Any]], query: Mapping[str, str]) -> Response:
    try:
        per_page = min(int(query.get("per_page") or 100), MAX_PER_PAGE)
        offset = _decode_cursor(query.get("cursor") or "")
    except ValueError:
        raise VultrError(400, "Invalid per_page or cursor.") from None
    if per_page < 1:
        raise VultrError(400, "Invalid per_page or cursor.")
    end = offset + per_page
    links = {
        "next": _encode_cursor("next", end) if end < len(items) else "",
        "prev": _encode_cursor("prev", max(offset - per_page, 0)) if offset else "",
    }
    body = {name: items[offset:end], "meta": {"total": len(items), "links": links}}
    return Response(200, body)


def _encode_cursor(direction: str, offset: int) -> str:
    return base64.b64encode(f"{direction}__{offset}".encode()).decode()


def _decode_cursor(cursor: str) -> int:
    if not cursor:
        return 0
    direction, _, offset = base64.b64decode(cursor, validate=True).decode().partition("__")
    if direction not in ("next", "prev"):
        raise ValueError(cursor)
    return int(offset)
