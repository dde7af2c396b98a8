"""The local Vultr answers billing requests as Vultr's v2 API documents."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_CEILING, Decimal
from typing import Any

import httpx
import pytest

from cost_local.sandbox.bills import generate_bills
from cost_local.sandbox.catalog import demo_accounts
from cost_local.sandbox.vultr import Handover, VultrBilling
from cost_local.sandbox.vultr_ledger import billed_by_month, estimated_days, ledger

pytestmark = pytest.mark.slow
ACCOUNT = demo_accounts("acme")[3]
TODAY = date(2025, 6, 10)
LINES = generate_bills([ACCOUNT], date(2025, 1, 1), TODAY, seed=3)
KEY = "VULTRKEY123"


@pytest.fixture
def vultr() -> Iterator[VultrBilling]:
    with VultrBilling({KEY: ACCOUNT.billing_account_id}, LINES, today=TODAY) as server:
        yield server


def get(base: str, path: str, key: str = KEY, **params: Any) -> httpx.Response:
    return httpx.get(f"{base}{path}", params=params, headers={"Authorization": f"Bearer {key}"})


def exact(response: httpx.Response) -> Any:
    return json.loads(response.text, parse_float=Decimal)


def test_wrong_api_key_is_401_with_vultr_error_body(vultr: VultrBilling) -> None:
    response = get(vultr.base_url, "/v2/billing/invoices", key="nope")
    assert response.status_code == 401
    assert response.json() == {"error": "Invalid API token.", "status": 401}


def test_invoices_are_paged_with_a_cursor_until_next_is_empty(vultr: VultrBilling) -> None:
    invoices, cursor, pages = [], "", 0
    while True:
        answer = exact(get(vultr.base_url, "/v2/billing/invoices", per_page=2, cursor=cursor))
        invoices += answer["billing_invoices"]
        pages += 1
        cursor = answer["meta"]["links"]["next"]
        if not cursor:
            break
    assert pages == 3 and answer["meta"]["total"] == 5  # January .. May; June is pending
    assert [i["date"][:10] for i in invoices] == [
        "2025-06-01",
        "2025-05-01",
        "2025-04-01",
        "2025-03-01",
        "2025-02-01",
    ]
    january = exact(get(vultr.base_url, f"/v2/billing/invoices/{invoices[-1]['id']}/items"))
    # The amount is the items' total (hourly charges capped at 672 hours, whole cents), not the
    # uncapped sum of the daily usage.
    assert invoices[-1]["amount"] == sum(i["total"] for i in january["invoice_items"])
    uncapped = sum(x.billed_cost for x in LINES if x.charge_date.month == 1)
    assert invoices[-1]["amount"] < uncapped


def test_invoice_items_total_the_invoice_and_keep_exact_amounts(vultr: VultrBilling) -> None:
    invoice = exact(get(vultr.base_url, "/v2/billing/invoices"))["billing_invoices"][0]
    items = exact(get(vultr.base_url, f"/v2/billing/invoices/{invoice['id']}/items", per_page=500))
    assert set(items["invoice_items"][0]) == {
        "description",
        "product",
        "start_date",
        "end_date",
        "units",
        "unit_type",
        "unit_price",
        "total",
    }
    assert sum(i["total"] for i in items["invoice_items"]) == invoice["amount"]
    assert items["invoice_items"][0]["start_date"].startswith("2025-05-")
    assert isinstance(items["invoice_items"][0]["unit_price"], Decimal)


def test_pending_charges_cover_this_month_until_yesterday(vultr: VultrBilling) -> None:
    pending = exact(get(vultr.base_url, "/v2/billing/pending-charges"))["pending_charges"]
    hourly = [i for i in pending if i["unit_type"] == "hours"]
    june = [x for x in LINES if x.charge_date >= date(2025, 6, 1)]
    # Nine days stay below the monthly cap: each item is its usage, rounded up to the cent.
    assert sum(i["total"] for i in hourly) == sum(
        (x.billed_cost for x in june), Decimal(0)
    ).quantize(Decimal("0.01"), rounding=ROUND_CEILING) or all(
        i["total"] == (i["units"] * i["unit_price"]).quantize(Decimal("0.01"), ROUND_CEILING)
        for i in hourly
    )
    assert max(i["end_date"] for i in pending).startswith("2025-06-10T00:00:00")
    assert {i["unit_type"] for i in pending} == {"hours", "overage", "discount"}
    account = exact(get(vultr.base_url, "/v2/account"))["account"]
    assert account["pending_charges"] == sum(i["total"] for i in pending)


def test_another_accounts_invoice_is_not_found(vultr: VultrBilling) -> None:
    response = get(vultr.base_url, "/v2/billing/invoices/1/items")
    assert response.status_code == 404
    assert response.json()["status"] == 404


def test_more_than_the_rate_limit_in_a_second_is_429() -> None:
    keys = {KEY: ACCOUNT.billing_account_id}
    with (
        VultrBilling(keys, LINES, today=TODAY, requests_per_second=3) as vultr,
        httpx.Client() as c,
    ):
        codes = [
            c.get(
                f"{vultr.base_url}/v2/billing/pending-charges",
                headers={"Authorization": f"Bearer {KEY}"},
            ).status_code
            for _ in range(4)
        ]
    assert codes == [200, 200, 200, 429]


def test_forced_throttle_answers_429_once(vultr: VultrBilling) -> None:
    vultr.throttle(1)
    assert get(vultr.base_url, "/v2/billing/invoices").status_code == 429
    assert get(vultr.base_url, "/v2/billing/invoices").status_code == 200


def test_hourly_charges_are_capped_at_672_hours_a_month(vultr: VultrBilling) -> None:
    invoice = exact(get(vultr.base_url, "/v2/billing/invoices"))["billing_invoices"][0]
    items = exact(get(vultr.base_url, f"/v2/billing/invoices/{invoice['id']}/items"))
    whole_month = [i for i in items["invoice_items"] if i["units"] == 31 * 24]  # May
    assert whole_month
    for item in whole_month:
        cap = (672 * item["unit_price"]).quantize(Decimal("0.01"), ROUND_CEILING)
        assert item["total"] == cap < item["units"] * item["unit_price"]
        assert item["start_date"] == "2025-05-01T00:00:00+00:00"
        assert item["end_date"] == "2025-05-31T23:59:59+00:00"
    created_later = [i for i in items["invoice_items"] if i["start_date"] > "2025-05-01T"]
    assert created_later or all(i["start_date"].startswith("2025-05-01") for i in whole_month)


def test_the_handover_lags_as_configured() -> None:
    lines = generate_bills([ACCOUNT], date(2025, 4, 1), date(2025, 6, 3), seed=3)
    keys = {KEY: ACCOUNT.billing_account_id}
    with VultrBilling(keys, lines, now=datetime(2025, 6, 1, 6, tzinfo=UTC)) as vultr:
        account = ACCOUNT.billing_account_id
        assert vultr.served(account).invoices[0]["date"] == "2025-06-01T00:00:00+00:00"
        assert vultr.served(account).pending == []  # reset, nothing accrued yet
        vultr.handover = Handover(pending_holdover=timedelta(days=1))
        held = vultr.served(account).pending  # (a) still May's, while May is invoiced
        assert held and all(i["start_date"].startswith("2025-05") for i in held)
        vultr.handover = Handover(invoice_lag=timedelta(days=2))
        assert vultr.served(account).invoices[0]["date"].startswith("2025-05-03")  # (b): April's
        assert vultr.served(account).pending == []  # May has neither
        vultr.now = datetime(2025, 6, 3, tzinfo=UTC)
        assert vultr.served(account).invoices[0]["date"] == "2025-06-03T00:00:00+00:00"


def test_a_misstated_invoice_differs_from_its_items(vultr: VultrBilling) -> None:
    vultr.misstate_invoice(ACCOUNT.billing_account_id, date(2025, 5, 1), Decimal("-0.5"))
    invoice = exact(get(vultr.base_url, "/v2/billing/invoices"))["billing_invoices"][0]
    items = exact(get(vultr.base_url, f"/v2/billing/invoices/{invoice['id']}/items", per_page=500))
    assert invoice["amount"] == sum(i["total"] for i in items["invoice_items"]) - Decimal("0.5")


def test_the_ledger_spreads_each_month_to_its_total(vultr: VultrBilling) -> None:
    account = ACCOUNT.billing_account_id
    book = ledger(vultr, account, date(2025, 1, 1), TODAY + timedelta(days=1))
    served = vultr.served(account)
    by_month = billed_by_month(book)
    for invoice in served.invoices:
        month = (date.fromisoformat(invoice["date"][:10]) - timedelta(days=1)).strftime("%Y-%m")
        assert by_month[month] == invoice["amount"]
    assert by_month["2025-06"] == served.pending_total
    assert {day for day, _, _ in book if day.month == 6} == {date(2025, 6, d) for d in range(1, 10)}
    assert estimated_days(vultr, account) == {date(2025, 6, d) for d in range(1, 10)}
    credits = [cell for (_, _, category), cell in book.items() if category == "Credit"]
    # FOCUS: a credit has no list price, so its ListCost is its BilledCost (never null).
    assert credits and all(cell["ListCost"] == cell["BilledCost"] < 0 for cell in credits)
