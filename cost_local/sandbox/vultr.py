"""A local Vultr billing API (v2): monthly invoices with their items, and the current month's
pending charges; Bearer API keys, per_page + cursor paging, ~30 requests a second then 429."""

from __future__ import annotations

import base64
import re
import time
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from cost_local.sandbox.bills import GeneratedLine
from cost_local.sandbox.simulator import Request, Response, Simulator

MAX_PER_PAGE = 500
_ITEMS = re.compile(r"^/v2/billing/invoices/(?P<id>\d+)/items$")
_INVOICE = re.compile(r"^/v2/billing/invoices/(?P<id>\d+)$")


class VultrError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.response = Response(status, {"error": message, "status": status})


class VultrBilling(Simulator):
    """Vultr's billing endpoints for the accounts behind the given API keys."""

    def __init__(
        self,
        api_keys: Mapping[str, str],  # API key -> account id (a line's billing_account_id)
        lines: Iterable[GeneratedLine] = (),
        *,
        today: date | None = None,
        requests_per_second: int = 30,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host=host, port=port)
        self.api_keys = dict(api_keys)
        self.today = today or datetime.now(UTC).date()
        self.requests_per_second = requests_per_second
        self._recent: dict[str, deque[float]] = defaultdict(deque)
        self._forced_throttles = 0
        self.set_lines(lines)

    def set_lines(self, lines: Iterable[GeneratedLine]) -> None:
        """Replace the bills (e.g. when a pending month changes or closes)."""
        months: dict[tuple[str, date], list[GeneratedLine]] = defaultdict(list)
        for line in lines:
            if line.provider == "vultr" and line.charge_date < self.today:
                months[(line.billing_account_id, line.charge_date.replace(day=1))].append(line)
        this_month = self.today.replace(day=1)
        invoices: dict[str, list[dict[str, Any]]] = defaultdict(list)
        items: dict[int, list[dict[str, Any]]] = {}
        pending: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for (account, month), month_lines in sorted(months.items()):
            month_items = _items(month_lines)
            if month == this_month:
                pending[account] = month_items
                continue
            invoice_id = 10_000_000 + int(month.strftime("%Y%m")) * 10 + len(invoices[account])
            items[invoice_id] = month_items
            issued = _next_month(month)
            invoices[account].insert(0, {  # newest first, as Vultr lists them
                "id": invoice_id,
                "date": f"{issued.isoformat()}T00:00:00+00:00",
                "description": f"Invoice #{invoice_id}",
                "amount": sum((i["total"] for i in month_items), Decimal(0)),
                "balance": Decimal(0),
            })  # fmt: skip
        with self.lock:
            self._invoices, self._items, self._pending = invoices, items, pending

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
            with self.lock:
                invoices = self._invoices.get(account, [])
                own = {invoice["id"] for invoice in invoices}
                if request.path == "/v2/billing/invoices":
                    return _paged("billing_invoices", invoices, request.query)
                if request.path == "/v2/billing/pending-charges":
                    return Response(200, {"pending_charges": self._pending.get(account, [])})
                if (match := _ITEMS.match(request.path)) and int(match["id"]) in own:
                    return _paged("invoice_items", self._items[int(match["id"])], request.query)
                if (match := _INVOICE.match(request.path)) and int(match["id"]) in own:
                    found = next(i for i in invoices if i["id"] == int(match["id"]))
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


def _items(lines: list[GeneratedLine]) -> list[dict[str, Any]]:
    """One invoice item per resource and plan over the month, as Vultr itemises."""
    grouped: dict[tuple[str, str], list[GeneratedLine]] = defaultdict(list)
    for line in lines:
        grouped[(line.resource_id, line.sku_id)].append(line)
    out = []
    for (_, sku), group in sorted(grouped.items()):
        first = min(x.charge_date for x in group)
        last = max(x.charge_date for x in group)
        out.append({
            "description": f"{group[0].resource_name} ({sku})",
            "product": group[0].service_name,
            "start_date": f"{first.isoformat()}T00:00:00+00:00",
            "end_date": f"{(last + timedelta(days=1)).isoformat()}T00:00:00+00:00",
            "units": sum((x.pricing_quantity for x in group), Decimal(0)),
            "unit_type": group[0].pricing_unit,
            "unit_price": group[0].list_unit_price,
            "total": sum((x.billed_cost for x in group), Decimal(0)),
        })  # fmt: skip
    return out


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


def _next_month(month: date) -> date:
    return (month + timedelta(days=32)).replace(day=1)
