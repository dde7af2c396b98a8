"""`currency=XXX`: amounts converted at read time with the stored reference rates, exactly as
Decimal arithmetic over the same lines and rates gives them, the rates stated, a missing rate
refused."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal, localcontext
from typing import Any

import pandas as pd
import pytest

from cost_pipelines.warehouse.connection import WarehouseSettings, create_client
from tests.api import expected
from tests.api.dataset import HISTORY_DAYS
from tests.support.api import Api, serve_api
from tests.support.processes import WarehouseProcess

pytestmark = pytest.mark.slow

FACTOR = Decimal("1e-24")
PICO = Decimal("1e-12")
MAX_AGE = 7
# GBP publishes nothing for these days back from today: a gap longer than MAX_AGE.
GBP_GAP = range(70, 58, -1)

Rates = dict[str, dict[date, Decimal]]


def published(day: date) -> bool:
    return day.weekday() < 5  # the ECB publishes on working days


@pytest.fixture(scope="module")
def rates(api: Api, warehouse: WarehouseProcess) -> Rates:
    """EUR-based USD and GBP rates on working days of the data set's history, stored twice for
    some days (the newer load wins), and a GBP gap."""
    first = api.today - timedelta(days=HISTORY_DAYS + 20)
    table: Rates = {"USD": {}, "GBP": {}}
    rows: list[list[Any]] = []
    old = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range((api.today - first).days + 1):
        day = first + timedelta(days=i)
        if not published(day):
            continue
        usd = Decimal("1.05") + Decimal(i % 17) / Decimal(997)
        usd = usd.quantize(Decimal("1e-4"))
        gbp = (Decimal("0.84") + Decimal(i % 13) / Decimal(1009)).quantize(Decimal("1e-5"))
        table["USD"][day] = usd
        rows.append([day, "EUR", "USD", usd, "test", datetime.now(UTC)])
        if i % 5 == 0:  # an earlier load of the same day with another rate: replaced
            rows.append([day, "EUR", "USD", usd * 2, "test", old])
        if (api.today - day).days not in GBP_GAP:
            table["GBP"][day] = gbp
            rows.append([day, "EUR", "GBP", gbp, "test", datetime.now(UTC)])
    client = create_client(WarehouseSettings(warehouse_port=warehouse.port))
    try:
        client.insert(
            "exchange_rates",
            rows,
            column_names=["rate_date", "base", "currency", "rate", "source", "loaded_at"],
        )
    finally:
        client.close()
    return table


def day_rate(table: Rates, currency: str, day: date) -> tuple[date, Decimal] | None:
    if currency == "EUR":
        return day, Decimal(1)
    for back in range(MAX_AGE + 1):
        when = day - timedelta(days=back)
        if when in table[currency]:
            return when, table[currency][when]
    return None


def month_rate(table: Rates, currency: str, day: date) -> tuple[date, Decimal] | None:
    if currency == "EUR":
        return day, Decimal(1)
    month = [r for d, r in table[currency].items() if (d.year, d.month) == (day.year, day.month)]
    if not month:
        return None
    with localcontext(prec=100):
        mean = (sum(month, Decimal(0)) / len(month)).quantize(FACTOR, rounding=ROUND_DOWN)
    return day.replace(day=1), mean.quantize(PICO, rounding=ROUND_HALF_EVEN)


Picker = Callable[[Rates, str, date], tuple[date, Decimal] | None]


def factor(table: Rates, source: str, target: str, day: date, pick: Picker = day_rate) -> Decimal:
    if source == target:
        return Decimal(1)
    frm, to = pick(table, source, day), pick(table, target, day)
    assert frm and to, (source, target, day)
    with localcontext(prec=100):
        return (to[1] / frm[1]).quantize(FACTOR, rounding=ROUND_DOWN)


def converted(
    rows: pd.DataFrame,
    table: Rates,
    target: str,
    column: str = "BilledCost",
    pick: Picker = day_rate,
) -> Decimal:
    """Sum of amount x factor over the lines (exact), rounded half-even to 12 decimals."""
    with localcontext(prec=120):
        total = sum(
            (
                amount * factor(table, currency, target, day, pick)
                for amount, currency, day in zip(
                    rows[column], rows["BillingCurrency"], rows["day"], strict=True
                )
            ),
            Decimal(0),
        )
    return total.quantize(PICO, rounding=ROUND_HALF_EVEN)


def window(api: Api, back: int, length: int) -> tuple[date, date]:
    start = api.today - timedelta(days=back)
    return start, start + timedelta(days=length)


@pytest.mark.parametrize("target", ["EUR", "GBP", "USD"])
def test_total_in_one_currency_is_the_exact_sum_of_converted_lines(
    api: Api, lines: pd.DataFrame, rates: Rates, target: str
) -> None:
    start, end = window(api, 50, 40)
    body = api.get(
        "/api/v2/costs/acme/all/total", start=str(start), end=str(end), currency=target
    ).json()
    rows = expected.select(lines, "acme", "all", start, end)
    assert set(rows["BillingCurrency"]) == {"USD", "EUR", "GBP"}
    [total] = body["totals"]
    assert total["currency"] == target
    assert Decimal(total["amount"]) == converted(rows, rates, target)
    assert total["lines"] == len(rows)
    conversion = body["conversion"]
    assert (conversion["currency"], conversion["basis"], conversion["base"]) == (
        target,
        "day",
        "EUR",
    )
    used = set()
    for currency, day in {
        (c, d) for c, d in zip(rows["BillingCurrency"], rows["day"], strict=True)
    }:
        if currency == target:
            continue
        for side in (currency, target):
            if side != "EUR":
                when, rate = day_rate(rates, side, day)  # type: ignore[misc]
                used.add((side, str(when), rate))
    assert {
        (r["currency"], r["rate_date"], Decimal(r["rate"])) for r in conversion["rates"]
    } == used


def test_trends_by_type_and_by_resource_convert_each_day_at_its_rate(
    api: Api, lines: pd.DataFrame, rates: Rates
) -> None:
    start, end = window(api, 45, 21)
    period = {"start": str(start), "end": str(end), "currency": "EUR"}
    rows = expected.select(lines, "acme", "all", start, end)

    trends = api.get("/api/v2/costs/acme/all/trends", **period).json()
    [series] = trends["series"]
    assert series["currency"] == "EUR"
    want = {d: converted(g, rates, "EUR") for d, g in rows.groupby("day")}
    got = {date.fromisoformat(p["bucket"]): Decimal(p["amount"]) for p in series["points"]}
    assert got == {d: want.get(d, Decimal(0)) for d in got}

    by_type = api.get("/api/v2/costs/acme/all/by-type", **period).json()
    want_services = {
        (c, s): converted(g, rates, "EUR")
        for (c, s), g in rows.groupby(["ServiceCategory", "ServiceName"])
    }
    got_services = {
        (c["service_category"], s["service_name"]): Decimal(s["amount"])
        for c in by_type["data"]
        for s in c["services"]
    }
    assert got_services == want_services and {c["currency"] for c in by_type["data"]} == {"EUR"}

    by_resource = api.get("/api/v2/costs/acme/all/by-resource", limit=1000, **period).json()
    [total] = by_resource["totals"]
    assert total["currency"] == "EUR"
    assert Decimal(total["gross_cost"]) == sum(
        (Decimal(r["gross_cost"]) for r in by_resource["data"]), Decimal(0)
    )
    keyed = rows.assign(
        key=[
            (p, r, s if r == "" else "")
            for p, r, s in zip(
                rows["provider"], rows["ResourceId"], rows["ServiceName"], strict=True
            )
        ]
    )
    want_rows = {k: converted(g, rates, "EUR") for k, g in keyed.groupby("key")}
    got_rows = {
        (r["provider"], r["resource_id"], r["service_name"] if r["unattributed"] else ""): Decimal(
            r["amount"]
        )
        for r in by_resource["data"]
    }
    assert got_rows == want_rows


def test_latest_converts_each_providers_day(api: Api, lines: pd.DataFrame, rates: Rates) -> None:
    body = api.get("/api/v2/costs/acme/all/latest", currency="EUR").json()
    assert body["conversion"]["currency"] == "EUR"
    for entry in body["providers"]:
        day = date.fromisoformat(entry["day"])
        rows = expected.select(lines, "acme", entry["provider"], day, day + timedelta(days=1))
        [total] = entry["totals"]
        assert total["currency"] == "EUR"
        per_item: dict[tuple[str, str], pd.DataFrame] = defaultdict(pd.DataFrame)
        for key, group in rows.groupby(["ServiceName", "ResourceId"]):
            per_item[key] = group
        got = {(i["service_name"], i["resource_id"]): Decimal(i["amount"]) for i in entry["items"]}
        assert got == {k: converted(g, rates, "EUR") for k, g in per_item.items()}


def test_a_weekend_day_uses_the_fridays_rate(api: Api, lines: pd.DataFrame, rates: Rates) -> None:
    saturday = api.today - timedelta(days=30)
    while saturday.weekday() != 5:
        saturday -= timedelta(days=1)
    body = api.get(
        "/api/v2/costs/acme/aws/total",
        start=str(saturday),
        end=str(saturday + timedelta(days=1)),
        currency="EUR",
    ).json()
    friday = saturday - timedelta(days=1)
    rows = expected.select(lines, "acme", "aws", saturday, saturday + timedelta(days=1))
    assert len(rows), "the data set has cost on that Saturday"
    assert [(r["currency"], r["rate_date"]) for r in body["conversion"]["rates"]] == [
        ("USD", str(friday))
    ]
    assert Decimal(body["totals"][0]["amount"]) == converted(rows, rates, "EUR")


def test_a_day_without_a_usable_rate_is_refused_naming_currency_and_day(
    api: Api, rates: Rates
) -> None:
    start, end = window(api, 75, 20)
    answer = api.get("/api/v2/costs/acme/gcp/total", start=str(start), end=str(end), currency="EUR")
    assert answer.status_code == 422, answer.text
    [error] = answer.json()["detail"]
    assert error["loc"] == ["query", "currency"]
    first_missing = next(
        start + timedelta(days=i)
        for i in range(20)
        if day_rate(rates, "GBP", start + timedelta(days=i)) is None
    )
    assert f"no GBP rate against EUR was published on {first_missing}" in error["msg"]

    unknown = api.get("/api/v2/costs/acme/aws/total", days=3, currency="JPY")
    assert unknown.status_code == 422
    assert "no JPY rate" in unknown.json()["detail"][0]["msg"]


@pytest.mark.parametrize("read", ["total", "trends", "by-type", "by-resource", "latest"])
@pytest.mark.parametrize("value", ["eur", "EURO", "E1R", ""])
def test_a_malformed_currency_is_refused_naming_currency(api: Api, read: str, value: str) -> None:
    answer = api.get(f"/api/v2/costs/acme/all/{read}", currency=value)
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["query", "currency"]


def test_the_month_basis_uses_the_mean_of_the_months_rates(
    api: Api,
    lines: pd.DataFrame,
    rates: Rates,
    warehouse: WarehouseProcess,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COST_API_RATE_BASIS", "month")
    start, end = window(api, 110, 40)
    with serve_api(monkeypatch, warehouse.port, api.keys_file, database=api.database) as client:
        body = client.get(
            "/api/v2/costs/acme/all/total",
            params={"start": str(start), "end": str(end), "currency": "USD"},
            headers={"Authorization": f"Bearer {api.token}"},
        ).json()
    rows = expected.select(lines, "acme", "all", start, end)
    assert body["conversion"]["basis"] == "month"
    assert Decimal(body["totals"][0]["amount"]) == converted(rows, rates, "USD", pick=month_rate)
    months = {r["rate_date"] for r in body["conversion"]["rates"]}
    assert months == {str(d.replace(day=1)) for d in rows["day"]}
    for rate in body["conversion"]["rates"]:
        month = date.fromisoformat(rate["rate_date"])
        days = [
            d for d in rates[rate["currency"]] if (d.year, d.month) == (month.year, month.month)
        ]
        assert rate["published_days"] == len(days)
        assert Decimal(rate["rate"]) == month_rate(rates, rate["currency"], month)[1]  # type: ignore[index]
