"""The analyses' reads serve the latest materialization exactly: the demo's spike at /anomalies,
the month-end forecast and the budgets, with the read API's key scopes, periods and 422s."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from dagster import StaticPartitionsDefinition, materialize

from cost_api.auth import add_key
from cost_local.sandbox import demo
from cost_local.sandbox.bills import generate_bills
from cost_pipelines.assets.analytics import build_analytics_assets
from cost_pipelines.resources.clickhouse import ClickHouseResource
from cost_pipelines.resources.customers import CustomersResource
from tests.support.api import Api, serve_api
from tests.support.bills import store_bills
from tests.support.customers import write_customers
from tests.support.processes import WarehouseProcess, own_database

TODAY = datetime.now(UTC).date()
START = TODAY - timedelta(days=100)
SPIKE = TODAY - timedelta(days=3)
BUDGET = Decimal("1000")


@pytest.fixture(scope="module")
def api(warehouse: WarehouseProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """The demo's bills (spiking three days ago) with every analysis materialized, and the API
    in front of that database."""
    tmp = tmp_path_factory.mktemp("analytics")
    lines = generate_bills(
        list(demo.accounts().values()), START, TODAY + timedelta(days=1), spike_on=SPIKE
    )
    budget = {"amount": str(BUDGET), "currency": "USD", "provider": "aws"}
    customers = write_customers(
        tmp / "customers.yaml", {"demo": {"providers": {}, "budgets": [budget]}}
    )
    keys = tmp / "api_keys.yaml"
    token, other = add_key(keys, "finops", ["*"]), add_key(keys, "acme-only", ["acme"])
    with own_database(warehouse, "analytics_api") as name:
        resource = ClickHouseResource(url=warehouse.url, database=name)
        store_bills(resource.get_client(), "demo", lines, START, TODAY + timedelta(days=1))
        result = materialize(
            build_analytics_assets(StaticPartitionsDefinition(["demo"])),
            partition_key="demo",
            resources={"warehouse": resource, "customers": CustomersResource(path=str(customers))},
        )
        assert result.success
        with (
            pytest.MonkeyPatch.context() as monkeypatch,
            serve_api(monkeypatch, warehouse.port, keys, database=name) as client,
        ):
            yield Api(client, token, other, TODAY, keys, name)


def test_the_demos_spike_is_listed_with_the_lines_behind_it(api: Api) -> None:
    answer = api.get("/api/v2/costs/demo/aws/anomalies", days=7)
    assert answer.status_code == 200
    body = answer.json()
    assert body["period"]["days"] == 7 and body["as_of"] == TODAY.isoformat()
    on_the_day = {a["service_name"]: a for a in body["data"] if a["day"] == SPIKE.isoformat()}
    # The costliest product spiked, and the day's tax with it.
    assert set(on_the_day) == {"Amazon Bedrock", "Tax"}
    spike = on_the_day["Amazon Bedrock"]
    assert spike["currency"] == "USD"
    actual, expected = Decimal(spike["actual"]), Decimal(spike["expected"])
    assert Decimal(spike["deviation"]) == actual - expected and actual > Decimal(spike["upper"])
    assert spike["lines_url"] == f"/api/v2/costs/demo/aws/metrics?start={SPIKE}&days=1"
    resources = sum(Decimal(r["amount"]) for r in spike["top_resources"])
    assert 0 < resources <= actual
    assert api.get(spike["lines_url"]).status_code == 200


def test_all_providers_list_each_providers_spike_and_an_earlier_period_lists_none(api: Api) -> None:
    body = api.get("/api/v2/costs/demo/all/anomalies", days=7).json()
    assert {a["provider"] for a in body["data"] if a["day"] == SPIKE.isoformat()} == {
        "aws",
        "azure",
        "gcp",
        "vultr",
    }
    before = api.get("/api/v2/costs/demo/all/anomalies", end=SPIKE.isoformat(), days=2).json()
    assert all(a["day"] < SPIKE.isoformat() for a in before["data"])


def test_the_forecast_is_per_provider_and_currency_with_its_interval(api: Api) -> None:
    body = api.get("/api/v2/costs/demo/all/forecast").json()
    assert {(f["provider"], f["currency"]) for f in body["data"]} == {
        ("aws", "USD"),
        ("azure", "EUR"),
        ("gcp", "USD"),
        ("vultr", "USD"),
    }
    for item in body["data"]:
        assert Decimal(item["lower"]) <= Decimal(item["forecast"]) <= Decimal(item["upper"])
        assert item["days_complete"] == TODAY.day - 1
    only_aws = api.get("/api/v2/costs/demo/aws/forecast").json()["data"]
    assert [f["provider"] for f in only_aws] == ["aws"]


def test_budgets_report_cost_so_far_against_the_budget(api: Api) -> None:
    [budget] = api.get("/api/v2/costs/demo/budgets").json()["data"]
    assert budget["budget"] == "aws-USD" and Decimal(budget["amount"]) == BUDGET
    aws_month = api.get(
        "/api/v2/costs/demo/aws/total", start=TODAY.replace(day=1).isoformat()
    ).json()
    [usd] = [t for t in aws_month["totals"] if t["currency"] == "USD"]
    assert Decimal(budget["actual"]) == Decimal(usd["amount"])
    reached = [t for t in (50, 80, 100) if Decimal(usd["amount"]) * 100 >= BUDGET * t]
    assert budget["crossed_actual"] == reached


def test_a_customer_never_analysed_gets_empty_answers(api: Api) -> None:
    body = api.get("/api/v2/costs/acme/aws/anomalies").json()
    assert body["data"] == [] and body["computed_at"] is None
    assert api.get("/api/v2/costs/acme/budgets").json()["data"] == []


def test_the_reads_keep_the_api_conventions(api: Api) -> None:
    assert api.get("/api/v2/costs/demo/budgets", token=api.scoped_token).status_code == 403
    assert api.client.get("/api/v2/costs/demo/aws/forecast").status_code == 401
    wrong = api.get("/api/v2/costs/demo/aws/anomalies", days=0)
    assert wrong.status_code == 422 and wrong.json()["detail"][0]["loc"][-1] == "days"
    unknown = api.get("/api/v2/costs/demo/aws/forecast", cost_metric="list")
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["loc"][-1] == "cost_metric"
    assert api.get("/api/v2/costs/demo/oracle/anomalies").status_code == 422
    paths = api.client.get("/openapi.json").json()["paths"]
    anomalies = paths["/api/v2/costs/{customer_id}/{provider}/anomalies"]["get"]
    assert {"200", "401", "403", "422", "503"} <= anomalies["responses"].keys()
    assert {"days", "start", "end"} <= {p["name"] for p in anomalies["parameters"]}
