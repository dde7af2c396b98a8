"""Every V2 read answers the numbers pandas computes from the same rows, exactly."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pandas as pd
import pytest

from cost_api.params import CostMetric, CostQuery, Period
from cost_api.readers.cursor import PageKey, encode_cursor
from cost_api.schemas.costs import LatestCosts
from cost_pipelines.warehouse.connection import WarehouseSettings, create_client
from cost_pipelines.warehouse.writer import CostWindow, replace_window
from tests.api import expected
from tests.api.dataset import Dataset
from tests.support.api import Api
from tests.support.processes import WarehouseProcess

pytestmark = pytest.mark.slow

EXACT = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")
METRICS = ["billed", "effective", "list", "contracted"]


def money(text: str) -> Decimal:
    assert EXACT.match(text), f"{text!r} is not an exact decimal string"
    return Decimal(text)


def period_of(api: Api, name: str) -> tuple[dict[str, Any], date, date]:
    """Query parameters of a named period, and the [start, end) they must mean."""
    today = api.today
    tomorrow = today + timedelta(days=1)
    if name == "default":
        return {}, tomorrow - timedelta(days=30), tomorrow
    if name == "last 7 days":
        return {"days": 7}, tomorrow - timedelta(days=7), tomorrow
    if name == "three months":
        start, end = today - timedelta(days=110), today - timedelta(days=20)
        return {"start": start.isoformat(), "end": end.isoformat()}, start, end
    if name == "since start":
        start = today - timedelta(days=45)
        return {"start": start.isoformat()}, start, tomorrow
    if name == "days from start":
        start = today - timedelta(days=50)
        return {"start": start.isoformat(), "days": 20}, start, start + timedelta(days=20)
    if name == "days before end":
        end = today - timedelta(days=10)
        return {"end": end.isoformat(), "days": 60}, end - timedelta(days=60), end
    raise AssertionError(name)


CASES = [
    ("acme", "all", "default", "billed"),
    ("acme", "aws", "three months", "effective"),
    ("acme", "azure", "last 7 days", "list"),
    ("globex", "all", "since start", "contracted"),
    ("globex", "vultr", "days before end", "billed"),
    ("acme", "gcp", "three months", "contracted"),
    ("initech", "all", "three months", "list"),
    ("acme", "all", "days from start", "effective"),
]


@pytest.mark.parametrize(("customer", "provider", "period", "metric"), CASES)
def test_total_equals_the_sum_of_the_period_lines_per_currency(
    api: Api, lines: pd.DataFrame, customer: str, provider: str, period: str, metric: str
) -> None:
    params, start, end = period_of(api, period)
    answer = api.get(f"/api/v2/costs/{customer}/{provider}/total", cost_metric=metric, **params)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    want = expected.totals(expected.select(lines, customer, provider, start, end), metric)
    assert body["period"] == {"start": str(start), "end": str(end), "days": (end - start).days}
    assert {t["currency"]: (money(t["amount"]), t["lines"]) for t in body["totals"]} == want
    assert body["lines"] == sum(n for _, n in want.values())


@pytest.mark.parametrize(("customer", "provider", "period", "metric"), CASES)
def test_by_type_gives_each_category_its_share_and_services(
    api: Api, lines: pd.DataFrame, customer: str, provider: str, period: str, metric: str
) -> None:
    params, start, end = period_of(api, period)
    body = api.get(
        f"/api/v2/costs/{customer}/{provider}/by-type", cost_metric=metric, **params
    ).json()
    want = expected.by_type(expected.select(lines, customer, provider, start, end), metric)
    got = {
        (c["currency"], c["service_category"]): {
            "amount": money(c["amount"]),
            "share": None if c["share_percent"] is None else Decimal(c["share_percent"]),
            "services": {s["service_name"]: money(s["amount"]) for s in c["services"]},
        }
        for c in body["data"]
    }
    assert got == want


@pytest.mark.parametrize("limit", [1, 3, 50])
@pytest.mark.parametrize(("customer", "provider", "period", "metric"), CASES[:4])
def test_by_resource_lists_the_top_resources_per_currency(
    api: Api,
    lines: pd.DataFrame,
    customer: str,
    provider: str,
    period: str,
    metric: str,
    limit: int,
) -> None:
    params, start, end = period_of(api, period)
    body = api.get(
        f"/api/v2/costs/{customer}/{provider}/by-resource",
        cost_metric=metric,
        limit=limit,
        **params,
    ).json()
    want = expected.by_resource(
        expected.select(lines, customer, provider, start, end), metric, limit
    )
    got = [
        {
            **{k: r[k] for k in ("provider", "resource_id", "resource_name", "service_name")},
            "unattributed": r["unattributed"],
            "currency": r["currency"],
            "amount": money(r["amount"]),
            "gross_cost": money(r["gross_cost"]),
            "credits": money(r["credits"]),
            "share": None if r["share_percent"] is None else Decimal(r["share_percent"]),
        }
        for r in body["data"]
    ]
    assert got == want


@pytest.mark.parametrize("group_by", ["day", "week", "month"])
@pytest.mark.parametrize(("customer", "provider", "period", "metric"), CASES[:5])
def test_trends_show_every_bucket_and_compare_partial_ones_by_daily_average(
    api: Api,
    lines: pd.DataFrame,
    dataset: Dataset,
    customer: str,
    provider: str,
    period: str,
    metric: str,
    group_by: str,
) -> None:
    params, start, end = period_of(api, period)
    body = api.get(
        f"/api/v2/costs/{customer}/{provider}/trends",
        cost_metric=metric,
        group_by=group_by,
        **params,
    ).json()
    providers = sorted(set(expected.select(lines, customer, provider, None, None)["provider"]))
    is_open = expected.open_days(lines, dataset.loads, customer, providers, api.today)
    want = expected.trends(
        expected.select(lines, customer, provider, start, end),
        metric,
        group_by,
        start,
        end,
        is_open,
    )
    got = {
        s["currency"]: [
            {
                "bucket": date.fromisoformat(p["bucket"]),
                "days": p["days"],
                "open_days": p["open_days"],
                "partial": p["partial"],
                "amount": money(p["amount"]),
                "daily_average": p["daily_average"] and money(p["daily_average"]),
                "change_basis": p["change_basis"],
                "change": p["change"] and money(p["change"]),
                "change_percent": p["change_percent"] and Decimal(p["change_percent"]),
            }
            for p in s["points"]
        ]
        for s in body["series"]
    }
    assert got == want
    for series in body["series"]:
        points = series["points"]
        assert points[0]["start"] == str(start) and points[-1]["end"] == str(end)
        assert points[0]["change"] is None
        assert sum(p["days"] for p in points) == (end - start).days


def test_trends_fill_days_without_cost_with_zero(api: Api, lines: pd.DataFrame) -> None:
    # globex's vultr account has no lines for its last four days.
    body = api.get("/api/v2/costs/globex/vultr/trends", days=10).json()
    (series,) = body["series"]
    assert len(series["points"]) == 10
    assert [money(p["amount"]) for p in series["points"][-4:]] == [Decimal(0)] * 4


def test_trends_of_a_period_without_cost_are_zero_in_the_customers_currencies(
    api: Api, lines: pd.DataFrame
) -> None:
    # globex's vultr account has no lines for its last four days, and costs before them.
    body = api.get("/api/v2/costs/globex/vultr/trends", days=4).json()
    currencies = sorted(expected.select(lines, "globex", "vultr", None, None)["BillingCurrency"])

    assert [s["currency"] for s in body["series"]] == sorted(set(currencies)) == ["USD"]
    [series] = body["series"]
    assert money(series["total"]) == 0
    assert [(p["bucket"], money(p["amount"])) for p in series["points"]] == [
        (str(api.today - timedelta(days=n)), Decimal(0)) for n in (3, 2, 1, 0)
    ]


def test_trends_of_a_customer_without_any_cost_have_no_series(api: Api) -> None:
    body = api.get("/api/v2/costs/nobody-yet/all/trends", days=4).json()
    assert body["series"] == []


def test_a_rise_after_a_credit_bucket_has_a_positive_change_percent(
    api: Api, warehouse: WarehouseProcess
) -> None:
    # Days that are complete (settled a full day before the test's load): whole day buckets.
    first = api.today - timedelta(days=5)
    amounts = [Decimal("-10.00"), Decimal("5.00"), Decimal("2.50")]  # a refund, then usage
    rows = pd.DataFrame(
        {
            "ChargePeriodStart": [
                datetime.combine(first + timedelta(days=i), time(), UTC) for i in range(3)
            ],
            "BilledCost": amounts,
            "BillingCurrency": ["USD"] * 3,
        }
    )
    client = create_client(WarehouseSettings(warehouse_port=warehouse.port))
    try:
        window = CostWindow("refunded", "aws", "444444444444", first, first + timedelta(days=3))
        replace_window(client, window, rows, source="test")
    finally:
        client.close()

    body = api.get(
        "/api/v2/costs/refunded/aws/trends",
        start=str(first),
        end=str(first + timedelta(days=3)),
    ).json()

    [series] = body["series"]
    assert [money(p["amount"]) for p in series["points"]] == amounts
    got = [p["change_percent"] and Decimal(p["change_percent"]) for p in series["points"]]
    want = [None] + [
        expected.pct(now - before, abs(before)) for before, now in itertools.pairwise(amounts)
    ]
    assert got == want == [None, Decimal(150), Decimal(-50)]


def test_paging_returns_every_line_once_when_lines_repeat_across_page_ends(
    api: Api, warehouse: WarehouseProcess
) -> None:
    """Pages start after the previous page's last line, so lines equal in every column the API
    returns (they differ in SKU) must still come once each, also across a page end, and a cost
    a source does not supply (null) sorts last."""
    day = api.today - timedelta(days=3)
    twins = 5
    amounts = [Decimal("7.5")] * twins + [Decimal("9"), Decimal("7.5"), Decimal("1")]
    listed = [Decimal("8")] * twins + [None, None, Decimal("2")]
    rows = pd.DataFrame(
        {
            "ChargePeriodStart": [datetime.combine(day, time(), UTC)] * len(amounts),
            "BilledCost": amounts,
            "ListCost": listed,
            "BillingCurrency": ["USD"] * len(amounts),
            "ServiceName": ["Amazon EC2"] * len(amounts),
            "ResourceId": ["i-twin"] * len(amounts),
            "SkuId": [f"sku-{i}" for i in range(len(amounts))],
        }
    )
    client = create_client(WarehouseSettings(warehouse_port=warehouse.port))
    try:
        window = CostWindow("twins", "aws", "555555555555", day, day + timedelta(days=1))
        replace_window(client, window, rows, source="test")
    finally:
        client.close()

    for metric, column in (("billed", amounts), ("list", listed)):
        got, cursor, pages = [], None, 0
        while True:
            query: dict[str, Any] = {"cost_metric": metric, "limit": 2, "days": 7}
            if cursor:
                query["cursor"] = cursor
            body = api.get("/api/v2/costs/twins/aws/metrics", **query).json()
            assert body["count"] == len(amounts)
            got += [line[f"{metric}_cost"] for line in body["data"]]
            pages += 1
            cursor = body["next_cursor"]
            if cursor is None:
                break
        present = sorted((a for a in column if a is not None), reverse=True)
        want = present + [None] * (len(column) - len(present))
        assert [None if a is None else Decimal(a) for a in got] == want
        assert pages == -(-len(amounts) // 2)


@pytest.mark.parametrize(("customer", "provider", "period", "metric"), CASES[:3])
def test_metrics_pages_through_every_line_newest_first(
    api: Api, lines: pd.DataFrame, customer: str, provider: str, period: str, metric: str
) -> None:
    params, start, end = period_of(api, period)
    want = expected.metric_lines(expected.select(lines, customer, provider, start, end), metric)
    got: list[tuple[Any, ...]] = []
    cursor = None
    pages = 0
    while True:
        query: dict[str, Any] = {"cost_metric": metric, "limit": 97, **params}
        if cursor:
            query["cursor"] = cursor
        body = api.get(f"/api/v2/costs/{customer}/{provider}/metrics", **query).json()
        assert body["count"] == len(want)
        got += [
            (
                line["day"],
                line["provider"],
                line["billing_account_id"],
                line["service_name"],
                line["resource_id"],
                line["region_id"],
                line["charge_category"],
                money(line["billed_cost"]),
                money(line["effective_cost"]),
                money(line["list_cost"]),
                money(line["contracted_cost"]),
                line["currency"],
            )
            for line in body["data"]
        ]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert got == want
    assert pages == max(1, -(-len(want) // 97))


@pytest.mark.parametrize(("customer", "provider"), [("acme", "all"), ("acme", "aws")])
@pytest.mark.parametrize("metric", ["billed", "effective"])
def test_latest_is_each_providers_newest_complete_day_with_its_collection_time(
    api: Api, lines: pd.DataFrame, dataset: Dataset, customer: str, provider: str, metric: str
) -> None:
    body = api.get(f"/api/v2/costs/{customer}/{provider}/latest", cost_metric=metric).json()
    rows = expected.select(lines, customer, provider, None, None)
    col = expected.COLUMN[metric]
    providers = sorted(set(rows["provider"]))
    assert [p["provider"] for p in body["providers"]] == providers
    for entry in body["providers"]:
        mine = rows[rows["provider"] == entry["provider"]]
        last = expected.last_complete_day(lines, dataset.loads, customer, entry["provider"])
        newest = mine["day"].max()
        day = mine[mine["day"] <= last]["day"].max()
        assert (entry["day"], entry["complete"]) == (str(day), True)
        assert entry["open_day"] == (str(newest) if newest > day else None)
        day_rows = mine[mine["day"] == day]
        want = {
            (s, r, c): (expected.dsum(g[col]), len(g))
            for (s, r, c), g in day_rows.groupby(["ServiceName", "ResourceId", "BillingCurrency"])
        }
        got = {
            (i["service_name"], i["resource_id"], i["currency"]): (money(i["amount"]), i["lines"])
            for i in entry["items"]
        }
        assert got == want
        loads = [
            load
            for load in dataset.loads
            if load.window.customer_id == customer
            and load.window.provider == entry["provider"]
            and load.window.start <= day < load.window.end
        ]
        collected = pd.Timestamp(entry["collected_at"]).to_pydatetime()
        assert max(x.before for x in loads) <= collected <= max(x.after for x in loads)


def test_latest_of_all_names_one_day_per_provider_each_from_its_own_completeness(
    api: Api, lines: pd.DataFrame, dataset: Dataset
) -> None:
    body = api.get("/api/v2/costs/acme/all/latest").json()
    lasts = {
        c["provider"]: c["last_complete_day"] and date.fromisoformat(c["last_complete_day"])
        for c in body["completeness"]
    }
    want = {
        p: expected.last_complete_day(lines, dataset.loads, "acme", p)
        for p in ("aws", "azure", "gcp")
    }
    assert lasts == want
    # aws has cost today (still open), so yesterday is complete; azure's newest cost is
    # yesterday, collected less than a day after it ended: the day before is its last complete.
    today = api.today
    assert (want["aws"], want["azure"]) == (today - timedelta(days=1), today - timedelta(days=2))
    entries = {p["provider"]: p for p in body["providers"]}
    assert sorted(entries) == ["aws", "azure", "gcp"]
    assert all(date.fromisoformat(e["day"]) <= want[p] for p, e in entries.items())
    assert entries["aws"]["open_day"] == str(today)


def test_latest_is_what_its_declared_model_says(api: Api) -> None:
    """The route serialises its answer itself (FastAPI's check of the returned model is skipped
    for its thousands of items): the body still parses as LatestCosts and says nothing more."""
    response = api.get("/api/v2/costs/acme/all/latest")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    parsed = LatestCosts.model_validate(body)
    assert parsed.model_dump(mode="json") == body
    items = [i for p in body["providers"] for i in p["items"]]
    assert items and all(re.fullmatch(r"-?[0-9]+(\.[0-9]*[1-9])?", i["amount"]) for i in items)


def test_latest_for_a_customer_without_costs_has_no_provider(api: Api) -> None:
    body = api.get("/api/v2/costs/nobody-yet/all/latest").json()
    assert body["providers"] == [] and body["completeness"] == []


def test_amounts_keep_every_digit_a_float_would_lose(api: Api, lines: pd.DataFrame) -> None:
    rows = expected.select(lines, "acme", "all", None, None)
    want = {c: expected.dsum(g) for c, g in rows.groupby("BillingCurrency")["ListCost"]}
    body = api.get("/api/v2/costs/acme/all/total", cost_metric="list", days=400).json()
    got = {t["currency"]: t["amount"] for t in body["totals"]}
    assert {c: money(a) for c, a in got.items()} == want
    # None of these totals is a binary float: a JSON number would have rounded them.
    assert all(Decimal(float(a)) != Decimal(a) for a in got.values())


def test_a_page_past_the_end_is_empty_but_still_counts_the_lines(
    api: Api, lines: pd.DataFrame
) -> None:
    start, end = api.today - timedelta(days=20), api.today
    acme_billed = CostQuery("acme", "all", CostMetric.billed)
    # After the period's oldest possible line: its first day, the smallest amount, every text
    # sorted last.
    last = (start, *["\uffff"] * 6, Decimal("-100000000000000000000"), None, None, None, "\uffff")
    past_the_end = encode_cursor(acme_billed, Period(start, end), PageKey(last, 0))
    body = api.get("/api/v2/costs/acme/all/metrics", cursor=past_the_end).json()
    assert body["data"] == [] and body["next_cursor"] is None
    assert body["count"] == len(expected.select(lines, "acme", "all", start, end))


@pytest.mark.parametrize(
    ("reused_on", "metric"),
    [
        ("/api/v2/costs/acme/aws/metrics", "billed"),  # another provider
        ("/api/v2/costs/globex/all/metrics", "billed"),  # another customer
        ("/api/v2/costs/acme/all/metrics", "list"),  # another cost metric
    ],
)
def test_a_cursor_reused_on_another_list_is_rejected_naming_cursor(
    api: Api, reused_on: str, metric: str
) -> None:
    first = api.get("/api/v2/costs/acme/all/metrics", limit=5).json()
    cursor = first["next_cursor"]
    assert cursor is not None

    same_list = api.get("/api/v2/costs/acme/all/metrics", limit=5, cursor=cursor)
    other_list = api.get(reused_on, limit=5, cursor=cursor, cost_metric=metric)

    assert same_list.status_code == 200
    assert other_list.status_code == 422
    [error] = other_list.json()["detail"]
    assert error["loc"] == ["query", "cursor"]
    assert "another list" in error["msg"]


def test_cost_without_a_resource_is_one_row_per_service_not_folded_into_one_name(
    api: Api, lines: pd.DataFrame
) -> None:
    body = api.get("/api/v2/costs/initech/aws/by-resource", days=365, limit=1000).json()
    unattributed = {
        r["service_name"]: money(r["amount"]) for r in body["data"] if r["unattributed"]
    }
    tomorrow = api.today + timedelta(days=1)
    rows = expected.select(lines, "initech", "aws", tomorrow - timedelta(days=365), tomorrow)
    without = rows[rows["ResourceId"] == ""]
    assert set(unattributed) == {"AWS Support", "Tax"}
    assert unattributed == {
        s: expected.dsum(g) for s, g in without.groupby("ServiceName")["BilledCost"]
    }
    assert all(r["resource_id"] == "" for r in body["data"] if r["unattributed"])


@pytest.mark.parametrize("metric", ["list", "contracted"])
@pytest.mark.parametrize("read", ["total", "by-type", "by-resource", "trends", "latest"])
def test_a_metric_a_source_does_not_supply_is_refused_naming_provider_and_source(
    api: Api, metric: str, read: str
) -> None:
    for provider in ("aws", "all"):
        response = api.get(f"/api/v2/costs/umbrella/{provider}/{read}", cost_metric=metric)
        assert response.status_code == 422, (provider, response.text)
        [error] = response.json()["detail"]
        assert error["loc"] == ["query", "cost_metric"]
        assert f"cost_metric={metric} is not supplied by aws (test:" in error["msg"]
        assert "vultr" not in error["msg"]


def test_a_metric_every_source_supplies_is_answered_and_lines_show_null_where_absent(
    api: Api, lines: pd.DataFrame
) -> None:
    assert api.get("/api/v2/costs/umbrella/vultr/total", cost_metric="list").status_code == 200
    assert api.get("/api/v2/costs/umbrella/all/total", cost_metric="effective").status_code == 200
    page = api.get("/api/v2/costs/umbrella/aws/metrics", limit=5).json()["data"]
    assert page and all(
        line["list_cost"] is None and line["contracted_cost"] is None for line in page
    )
    assert all(line["billed_cost"] is not None for line in page)
