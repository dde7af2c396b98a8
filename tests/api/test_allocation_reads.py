"""by-tag, tag-keys and by-account answer the numbers pandas computes from the same rows, exactly:
untagged lines, keys differing in case, credits, several currencies, names of accounts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pandas as pd
import pytest

from cost_pipelines.warehouse.connection import WarehouseSettings, create_client
from cost_pipelines.warehouse.schema import migrate
from tests.api.allocation_dataset import build_allocation_dataset
from tests.api.dataset import Dataset, load_dataset
from tests.api.expected import dsum, pct, select
from tests.support.api import Api
from tests.support.processes import WarehouseProcess

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dataset(warehouse: WarehouseProcess, api_database: str) -> Iterator[Dataset]:
    """This module's data set (overrides the main one for the module's API)."""
    client = create_client(
        WarehouseSettings(warehouse_port=warehouse.port, clickhouse_database=api_database)
    )
    try:
        migrate(client)
        data = build_allocation_dataset(datetime.now(UTC).date())
        load_dataset(client, data)
    finally:
        client.close()
    yield data


def period(api: Api, days: int) -> tuple[dict[str, Any], date, date]:
    end = api.today + timedelta(days=1)
    return {"days": days}, end - timedelta(days=days), end


def lines_of(
    lines: pd.DataFrame, customer: str, provider: str, days: int, api: Api
) -> pd.DataFrame:
    _, start, end = period(api, days)
    return select(lines, customer, provider, start, end)


def expected_by_tag(
    rows: pd.DataFrame, key: str
) -> dict[tuple[str, str | None], tuple[Decimal, int]]:
    """(currency, value or None for untagged) -> (amount, lines); Azure keys match lowercased."""
    wanted = [key.lower() if p == "azure" else key for p in rows["provider"]]
    tagged = [k in tags for tags, k in zip(rows["Tags"], wanted, strict=True)]
    values = [tags.get(k, "") for tags, k in zip(rows["Tags"], wanted, strict=True)]
    frame = rows.assign(tagged=tagged, value=values)
    out = {}
    for (currency, is_tagged, value), group in frame.groupby(
        ["BillingCurrency", "tagged", "value"]
    ):
        out[currency, value if is_tagged else None] = (dsum(group["BilledCost"]), len(group))
    return out


def currency_totals(rows: pd.DataFrame) -> dict[str, tuple[Decimal, int]]:
    return {c: (dsum(g), len(g)) for c, g in rows.groupby("BillingCurrency")["BilledCost"]}


@pytest.mark.parametrize(
    ("customer", "provider", "key", "days"),
    [
        ("acme", "all", "team", 30),
        ("acme", "aws", "Team", 60),  # another AWS tag than `team`: keys are case sensitive
        ("acme", "azure", "TEAM", 14),  # Azure tag names are case-insensitive
        ("acme", "gcp", "cost-center", 45),
        ("acme", "vultr", "team", 30),  # no tags: everything is untagged
        ("globex", "all", "env", 61),
    ],
)
def test_by_tag_is_the_cost_per_value_with_an_untagged_bucket_per_currency(
    api: Api, lines: pd.DataFrame, customer: str, provider: str, key: str, days: int
) -> None:
    params, start, _ = period(api, days)
    answer = api.get(f"/api/v2/costs/{customer}/{provider}/by-tag", key=key, **params)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    rows = lines_of(lines, customer, provider, days, api)
    want = expected_by_tag(rows, key)
    totals = currency_totals(rows)
    got = {(d["currency"], d["value"]): (Decimal(d["amount"]), d["lines"]) for d in body["data"]}
    assert got == want
    assert body["other_values"] == []
    assert {t["currency"]: (Decimal(t["amount"]), t["lines"]) for t in body["totals"]} == totals
    for bucket in body["data"]:
        assert bucket["untagged"] is (bucket["value"] is None)
        amount = Decimal(bucket["amount"])
        share = pct(amount, totals[bucket["currency"]][0])
        assert (
            None if bucket["share_percent"] is None else Decimal(bucket["share_percent"])
        ) == share
    if provider == "vultr":
        assert [d["untagged"] for d in body["data"]] == [True]
    assert body["key"] == key and body["period"]["start"] == str(start)


def test_by_tag_lists_the_untagged_bucket_first_then_values_biggest_first(
    api: Api, lines: pd.DataFrame
) -> None:
    body = api.get("/api/v2/costs/acme/all/by-tag", key="team", days=60).json()
    for currency in {d["currency"] for d in body["data"]}:
        buckets = [d for d in body["data"] if d["currency"] == currency]
        assert buckets[0]["untagged"] and not any(b["untagged"] for b in buckets[1:])
        amounts = [Decimal(b["amount"]) for b in buckets[1:]]
        assert amounts == sorted(amounts, reverse=True)
    # A key present with an empty value is its own value, not untagged.
    assert any(d["value"] == "" for d in body["data"])


def test_by_tag_sums_the_values_past_the_limit_so_the_buckets_add_up(
    api: Api, lines: pd.DataFrame
) -> None:
    body = api.get("/api/v2/costs/acme/all/by-tag", key="team", days=60, limit=1).json()
    rows = lines_of(lines, "acme", "all", 60, api)
    want = expected_by_tag(rows, "team")
    totals = currency_totals(rows)
    for currency, (total, count) in totals.items():
        shown = [d for d in body["data"] if d["currency"] == currency]
        assert sum(not d["untagged"] for d in shown) <= 1
        other = [o for o in body["other_values"] if o["currency"] == currency]
        values = sum(1 for c, v in want if c == currency and v is not None)
        if values <= 1:
            assert other == []
            continue
        [rest] = other
        assert rest["values"] == len([1 for c, _ in want if c == currency]) - len(shown)
        assert Decimal(rest["amount"]) + dsum(Decimal(d["amount"]) for d in shown) == total
        assert rest["lines"] + sum(d["lines"] for d in shown) == count


def test_tag_keys_lists_every_key_with_its_lines_and_cost_per_currency(
    api: Api, lines: pd.DataFrame
) -> None:
    body = api.get("/api/v2/costs/acme/all/tag-keys", days=60).json()
    rows = lines_of(lines, "acme", "all", 60, api)
    totals = currency_totals(rows)
    exploded = (
        rows.assign(key=[list(t) for t in rows["Tags"]]).explode("key").dropna(subset=["key"])
    )
    want = {}
    for key, group in exploded.groupby("key"):
        costs = {c: (dsum(g), len(g)) for c, g in group.groupby("BillingCurrency")["BilledCost"]}
        want[key] = (len(group), costs)
    got = {
        k["key"]: (
            k["lines"],
            {c["currency"]: (Decimal(c["amount"]), c["lines"]) for c in k["costs"]},
        )
        for k in body["data"]
    }
    assert got == want
    assert {"team", "Team", "env", "cost-center"} <= set(got)
    assert [k["lines"] for k in body["data"]] == sorted(
        (k["lines"] for k in body["data"]), reverse=True
    )
    assert body["lines"] == len(rows)
    for key in body["data"]:
        for cost in key["costs"]:
            assert Decimal(cost["share_percent"]) == pct(
                Decimal(cost["amount"]), totals[cost["currency"]][0]
            )
    top = api.get("/api/v2/costs/acme/all/tag-keys", days=60, limit=2).json()
    assert top["data"] == body["data"][:2]


def expected_by_account(rows: pd.DataFrame) -> dict[tuple[str, str, str], dict[str, Any]]:
    out: dict[tuple[str, str, str], dict[str, Any]] = {}
    totals = currency_totals(rows)
    for (currency, provider, account), group in rows.groupby(
        ["BillingCurrency", "provider", "BillingAccountId"]
    ):
        named = group[group["BillingAccountName"] != ""].sort_values("ChargePeriodStart")
        amount = dsum(group["BilledCost"])
        subs = {}
        for sub, part in group.groupby("SubAccountId"):
            sub_named = part[part["SubAccountName"] != ""].sort_values("ChargePeriodStart")
            sub_amount = dsum(part["BilledCost"])
            subs[sub] = (
                sub_named["SubAccountName"].iloc[-1] if len(sub_named) else "",
                sub_amount,
                len(part),
                pct(sub_amount, totals[currency][0]),
                pct(sub_amount, amount),
            )
        out[currency, provider, account] = {
            "name": named["BillingAccountName"].iloc[-1] if len(named) else "",
            "amount": amount,
            "lines": len(group),
            "share": pct(amount, totals[currency][0]),
            "subs": subs,
        }
    return out


def _share(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


@pytest.mark.parametrize(
    ("customer", "provider", "days"),
    [("acme", "all", 61), ("acme", "aws", 20), ("acme", "azure", 45), ("globex", "all", 30)],
)
def test_by_account_is_the_cost_per_billing_account_and_sub_account_with_names(
    api: Api, lines: pd.DataFrame, customer: str, provider: str, days: int
) -> None:
    params, _, _ = period(api, days)
    answer = api.get(f"/api/v2/costs/{customer}/{provider}/by-account", **params)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    rows = lines_of(lines, customer, provider, days, api)
    want = expected_by_account(rows)
    got = {
        (a["currency"], a["provider"], a["billing_account_id"]): {
            "name": a["billing_account_name"],
            "amount": Decimal(a["amount"]),
            "lines": a["lines"],
            "share": _share(a["share_percent"]),
            "subs": {
                s["sub_account_id"]: (
                    s["sub_account_name"],
                    Decimal(s["amount"]),
                    s["lines"],
                    _share(s["share_percent"]),
                    _share(s["share_of_account_percent"]),
                )
                for s in a["sub_accounts"]
            },
        }
        for a in body["data"]
    }
    assert got == want
    assert {t["currency"]: (Decimal(t["amount"]), t["lines"]) for t in body["totals"]} == (
        currency_totals(rows)
    )
    order = [(a["currency"], -Decimal(a["amount"])) for a in body["data"]]
    assert order == sorted(order)


def test_by_account_shows_the_newest_name_of_a_renamed_account(api: Api) -> None:
    body = api.get("/api/v2/costs/acme/aws/by-account", days=61).json()
    names = {a["billing_account_id"]: a["billing_account_name"] for a in body["data"]}
    assert names == {"111111111111": "acme payer", "222222222222": ""}
    old = api.get(
        "/api/v2/costs/acme/aws/by-account",
        start=(api.today - timedelta(days=60)).isoformat(),
        days=10,
    ).json()
    assert {a["billing_account_name"] for a in old["data"]} >= {"acme old payer"}


@pytest.mark.parametrize("path", ["by-tag?key=team", "tag-keys", "by-account"])
def test_allocation_reads_keep_to_the_key_scope_and_the_period_rules(api: Api, path: str) -> None:
    route = f"/api/v2/costs/globex/all/{path}"
    forbidden = api.client.get(route, headers={"Authorization": f"Bearer {api.scoped_token}"})
    assert forbidden.status_code == 403
    assert (
        api.get(
            route.split("?")[0], days=0, **({"key": "team"} if "key" in path else {})
        ).status_code
        == 422
    )
    misspelt = api.get(
        route.split("?")[0], cost_metrik="list", **({"key": "team"} if "key" in path else {})
    )
    assert misspelt.status_code == 422
    assert misspelt.json()["detail"][0]["loc"] == ["query", "cost_metrik"]


@pytest.mark.parametrize("key", [None, "", "k" * 513])
def test_by_tag_without_a_usable_key_is_a_422_naming_key(api: Api, key: str | None) -> None:
    params = {} if key is None else {"key": key}
    answer = api.get("/api/v2/costs/acme/all/by-tag", **params)
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["query", "key"]


def test_allocation_reads_are_documented_in_openapi(api: Api) -> None:
    paths = api.client.get("/openapi.json").json()["paths"]
    for path in ("by-tag", "tag-keys", "by-account"):
        operation = paths[f"/api/v2/costs/{{customer_id}}/{{provider}}/{path}"]["get"]
        assert operation["description"] and {"200", "401", "403", "422", "503"} <= set(
            operation["responses"]
        )
