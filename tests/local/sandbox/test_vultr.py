"""The local Vultr answers billing requests as Vultr's v2 API documents."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any

import httpx
import pytest

from cost_local.sandbox.bills import generate_bills
from cost_local.sandbox.catalog import demo_accounts
from cost_local.sandbox.vultr import VultrBilling

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
    january = [x for x in LINES if x.charge_date.month == 1]
    assert invoices[-1]["amount"] == sum(x.billed_cost for x in january)


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
    june = [x for x in LINES if x.charge_date >= date(2025, 6, 1)]
    assert sum(i["total"] for i in pending) == sum(x.billed_cost for x in june)
    assert max(i["end_date"] for i in pending).startswith("2025-06-10")


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
