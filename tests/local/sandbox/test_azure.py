"""The local Azure answers token and Cost Management query requests as Azure documents."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from decimal import Decimal

import httpx
import pytest

from cost_local.sandbox.azure import QPU_RETRY_HEADER, AzureApp, AzureCostManagement
from cost_local.sandbox.azure_billing import cost_records, ledger
from cost_local.sandbox.bills import generate_bills
from cost_local.sandbox.catalog import demo_accounts

pytestmark = pytest.mark.slow
APP = AzureApp("tenant-1", "client-1", "s3cret")
ACCOUNT = demo_accounts("acme")[1]
LINES = generate_bills([ACCOUNT], date(2025, 3, 1), date(2025, 4, 1), seed=3)
RECORDS = cost_records(LINES)
LONGER = generate_bills([ACCOUNT], date(2025, 2, 1), date(2025, 4, 1), seed=3)
SCOPE = f"/providers/Microsoft.Billing/billingAccounts/{ACCOUNT.billing_account_id}"


@pytest.fixture
def azure() -> Iterator[AzureCostManagement]:
    with AzureCostManagement([APP], LINES, page_size=50) as server:
        yield server


def token(base: str, secret: str = "s3cret") -> httpx.Response:
    form = {
        "grant_type": "client_credentials",
        "client_id": "client-1",
        "client_secret": secret,
        "scope": "https://management.azure.com/.default",
    }
    return httpx.post(f"{base}/tenant-1/oauth2/v2.0/token", data=form)


def query_body(
    *groups: str,
    first: str = "2025-03-01",
    last: str = "2025-03-10",
    cost_type: str = "ActualCost",
    granularity: str = "Daily",
    charge_types: list[str] | None = None,
) -> dict:
    body = {
        "type": cost_type,
        "timeframe": "Custom",
        "timePeriod": {"from": f"{first}T00:00:00+00:00", "to": f"{last}T23:59:59+00:00"},
        "dataset": {
            "granularity": granularity,
            "aggregation": {"totalCost": {"name": "Cost", "function": "Sum"}},
            "grouping": [{"type": "Dimension", "name": g} for g in groups],
        },
    }
    if charge_types is not None:
        body["dataset"]["filter"] = {  # type: ignore[index]
            "dimensions": {"name": "ChargeType", "operator": "In", "values": charge_types}
        }
    return body


def post_query(base: str, bearer: str, body: dict, url: str | None = None) -> httpx.Response:
    url = url or f"{base}{SCOPE}/providers/Microsoft.CostManagement/query?api-version=2025-03-01"
    return httpx.post(url, json=body, headers={"Authorization": f"Bearer {bearer}"})


def all_pages(base: str, bearer: str, body: dict) -> tuple[list[dict], list[list], int]:
    response = post_query(base, bearer, body)
    pages, rows = 1, []
    while True:
        assert response.status_code == 200, response.text
        props = json.loads(response.text, parse_float=Decimal)["properties"]
        rows += props["rows"]
        if not props["nextLink"]:
            return props["columns"], rows, pages
        response = post_query(base, bearer, body, props["nextLink"])
        pages += 1


def test_client_credentials_grant_returns_a_bearer_token(azure: AzureCostManagement) -> None:
    answer = token(azure.base_url).json()
    assert answer["token_type"] == "Bearer" and answer["expires_in"] == 3599
    assert answer["access_token"]


def test_wrong_client_secret_is_refused_with_the_entra_error(azure: AzureCostManagement) -> None:
    response = token(azure.base_url, secret="wrong")
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.json()["error_codes"] == [7000215]
    assert "wrong" not in response.text


def test_query_without_a_valid_token_is_401(azure: AzureCostManagement) -> None:
    response = post_query(azure.base_url, "made-up", query_body("ServiceName"))
    assert response.status_code == 401
    assert response.json() == {
        "error": {"code": "InvalidAuthenticationToken", "message": "The access token is invalid."}
    }


def test_daily_rows_are_positional_with_usage_date_as_a_number_and_follow_next_link(
    azure: AzureCostManagement,
) -> None:
    bearer = token(azure.base_url).json()["access_token"]
    columns, rows, pages = all_pages(
        azure.base_url, bearer, query_body("ServiceName", "ResourceId")
    )
    assert columns == [
        {"name": "Cost", "type": "Number"},
        {"name": "UsageDate", "type": "Number"},
        {"name": "ServiceName", "type": "String"},
        {"name": "ResourceId", "type": "String"},
        {"name": "Currency", "type": "String"},
    ]
    assert pages > 1
    assert {row[1] for row in rows} == {20250300 + d for d in range(1, 11)}
    # ActualCost: usage at the price paid (covered usage at 0), commitment purchases, refunds.
    expected = sum(r.actual for r in RECORDS if r.actual is not None and r.day <= date(2025, 3, 10))
    assert sum(row[0] for row in rows) == expected
    assert {row[4] for row in rows} == {"EUR"}


def test_daily_totals_per_service_equal_the_bills(azure: AzureCostManagement) -> None:
    bearer = token(azure.base_url).json()["access_token"]
    _, rows, _ = all_pages(
        azure.base_url, bearer, query_body("ServiceName", first="2025-03-05", last="2025-03-05")
    )
    by_service = {row[2]: row[0] for row in rows}
    for service, amount in by_service.items():
        assert amount == sum(
            r.actual
            for r in RECORDS
            if r.service_name == service and r.day == date(2025, 3, 5) and r.actual is not None
        )


def test_more_than_two_groupings_is_a_bad_request(azure: AzureCostManagement) -> None:
    bearer = token(azure.base_url).json()["access_token"]
    response = post_query(
        azure.base_url, bearer, query_body("ServiceName", "ResourceId", "ResourceLocation")
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "BadRequest"
    assert "at most 2 items" in error["message"]


def test_exhausted_quota_answers_429_with_the_qpu_retry_after_header(
    azure: AzureCostManagement,
) -> None:
    bearer = token(azure.base_url).json()["access_token"]
    azure.throttle(1, retry_after=7)
    throttled = post_query(azure.base_url, bearer, query_body("ServiceName"))
    assert throttled.status_code == 429
    assert throttled.headers[QPU_RETRY_HEADER] == "7"
    assert throttled.headers["Retry-After"] == "7"
    assert post_query(azure.base_url, bearer, query_body("ServiceName")).status_code == 200


def test_more_queries_than_the_tenant_quota_in_ten_seconds_are_throttled() -> None:
    with AzureCostManagement([APP], LINES, qpu_per_10_seconds=3) as azure:
        bearer = token(azure.base_url).json()["access_token"]
        codes = [post_query(azure.base_url, bearer, query_body()).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]


def test_restated_lines_replace_what_the_api_reports(azure: AzureCostManagement) -> None:
    bearer = token(azure.base_url).json()["access_token"]
    azure.set_lines([x for x in LINES if x.service_name != "Storage"])
    _, rows, _ = all_pages(azure.base_url, bearer, query_body("ServiceName"))
    assert "Storage" not in {row[2] for row in rows}


def test_unknown_scope_is_forbidden(azure: AzureCostManagement) -> None:
    bearer = token(azure.base_url).json()["access_token"]
    url = (
        f"{azure.base_url}/subscriptions/nope/providers/Microsoft.CostManagement/query"
        "?api-version=2025-03-01"
    )
    response = post_query(azure.base_url, bearer, query_body(), url)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "AuthorizationFailed"


def test_a_daily_query_longer_than_a_month_is_answered_from_to_minus_a_month_only(
    azure: AzureCostManagement,
) -> None:
    bearer = token(azure.base_url).json()["access_token"]
    body = query_body(first="2025-03-01", last="2025-03-31")
    _, whole, _ = all_pages(azure.base_url, bearer, body)
    assert min(row[1] for row in whole) == 20250301  # March is one month: served whole
    with AzureCostManagement([APP], LONGER) as longer:
        bearer = token(longer.base_url).json()["access_token"]
        body = query_body(first="2025-02-20", last="2025-03-30")  # 39 days, no error
        _, rows, _ = all_pages(longer.base_url, bearer, body)
    assert min(row[1] for row in rows) == 20250301  # Mar 30 - 1 month + 1 day, Feb cut off
    assert max(row[1] for row in rows) == 20250330


def test_actual_and_amortized_views_hold_the_charge_types_microsoft_documents(
    azure: AzureCostManagement,
) -> None:
    bearer = token(azure.base_url).json()["access_token"]
    views = {}
    for cost_type in ("ActualCost", "AmortizedCost"):
        body = query_body("ChargeType", last="2025-03-31", cost_type=cost_type)
        _, rows, _ = all_pages(azure.base_url, bearer, body)
        views[cost_type] = {row[2] for row in rows}
        totals = sum(row[0] for row in rows)
        amounts = [r.actual if cost_type == "ActualCost" else r.amortized for r in RECORDS]
        assert totals == sum(a for a in amounts if a is not None)
    assert views["ActualCost"] == {"Usage", "Purchase", "Refund"}
    assert views["AmortizedCost"] == {"Usage", "UnusedReservation", "UnusedSavingsPlan"}
    # The ledger: BilledCost adds up to ActualCost, EffectiveCost to AmortizedCost.
    lines = ledger(RECORDS, date(2025, 3, 1), date(2025, 4, 1))
    assert sum(x.billed_cost for x in lines) == sum(r.actual or 0 for r in RECORDS)
    assert sum(x.effective_cost for x in lines) == sum(r.amortized or 0 for r in RECORDS)
    assert {x.charge_category for x in lines} == {"Usage", "Purchase"}
    assert {x.charge_type for x in lines if x.charge_class == "Correction"} == {"Refund"}
    assert all(x.list_cost is None and x.contracted_cost is None for x in lines)


def test_covered_usage_is_zero_in_actual_cost_and_amortized_in_amortized_cost(
    azure: AzureCostManagement,
) -> None:
    bearer = token(azure.base_url).json()["access_token"]
    rows = {}
    for cost_type in ("ActualCost", "AmortizedCost"):
        body = query_body("PricingModel", cost_type=cost_type, charge_types=["Usage"])
        _, answer, _ = all_pages(azure.base_url, bearer, body)
        rows[cost_type] = {(row[1], row[2]): row[0] for row in answer}
    for (day, model), amortized in rows["AmortizedCost"].items():
        if model in ("Reservation", "SavingsPlan"):
            assert rows["ActualCost"][(day, model)] == 0 and amortized > 0
        else:
            assert rows["ActualCost"][(day, model)] == amortized


def test_commitment_purchases_carry_no_resource_and_one_resource_comes_in_two_casings(
    azure: AzureCostManagement,
) -> None:
    bearer = token(azure.base_url).json()["access_token"]
    body = query_body("ResourceId", "ChargeType", last="2025-03-31")
    _, rows, _ = all_pages(azure.base_url, bearer, body)
    purchases = [row for row in rows if row[3] in ("Purchase", "Refund")]
    assert purchases and all(row[2] == "" for row in purchases)
    assert {row[0] > 0 for row in purchases if row[3] == "Purchase"} == {True}
    assert {row[0] < 0 for row in purchases if row[3] == "Refund"} == {True}
    ids = {row[2] for row in rows if row[2]}
    assert len(ids) > len({i.lower() for i in ids})


def test_a_period_total_has_no_usage_date(azure: AzureCostManagement) -> None:
    bearer = token(azure.base_url).json()["access_token"]
    body = query_body("SubscriptionId", "SubscriptionName", granularity="None")
    columns, rows, _ = all_pages(azure.base_url, bearer, body)
    assert [c["name"] for c in columns] == [
        "Cost",
        "SubscriptionId",
        "SubscriptionName",
        "Currency",
    ]
    assert {row[2] for row in rows} == {s.name for s in ACCOUNT.sub_accounts}
