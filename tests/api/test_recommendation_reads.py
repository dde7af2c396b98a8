"""/recommendations for the demo lists the providers' recommendations and ours, with savings
recomputed here from the sandbox's generated bills with pandas, to the last decimal (never by
calling the code that made them), sorted by saving, paged, under the read API's key scopes and
422s."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from pathlib import Path

import pandas as pd
import pytest
import yaml

from cost_api.auth import add_key
from cost_local.sandbox.aws_ce import REGION_NAMES
from cost_pipelines.resources.clickhouse import ClickHouseResource
from tests.support.api import Api, serve_api
from tests.support.ports import PortPicker
from tests.support.processes import WarehouseProcess, own_database
from tests.support.recommendations import RecommendationStack, recommendation_stack

TODAY = datetime.now(UTC).date()
STORED = Decimal("1e-12")  # the warehouse's Decimal(38, 12)
Key = tuple[str, str, str]  # kind, scope, resource_id


@pytest.fixture(scope="module")
def served(
    warehouse: WarehouseProcess, tmp_path_factory: pytest.TempPathFactory, free_port: PortPicker
) -> Iterator[tuple[Api, RecommendationStack]]:
    tmp = tmp_path_factory.mktemp("recommendation_reads")
    keys = tmp / "api_keys.yaml"
    token, other = add_key(keys, "finops", ["*"]), add_key(keys, "acme-only", ["acme"])
    with (
        own_database(warehouse, "recommendation_reads") as name,
        pytest.MonkeyPatch.context() as monkeypatch,
        recommendation_stack(
            ClickHouseResource(url=warehouse.url, database=name), tmp, free_port, monkeypatch, TODAY
        ) as stack,
        serve_api(monkeypatch, warehouse.port, keys, database=name) as client,
    ):
        yield Api(client, token, other, TODAY, keys, name), stack


@pytest.fixture(scope="module")
def api(served: tuple[Api, RecommendationStack]) -> Api:
    return served[0]


@pytest.fixture(scope="module")
def stack(served: tuple[Api, RecommendationStack]) -> RecommendationStack:
    return served[1]


def frame(stack: RecommendationStack) -> pd.DataFrame:
    """The generated lines and the AWS fee lines, as stored."""
    lines = pd.DataFrame(
        {
            "provider": [x.provider for x in stack.lines],
            "account": [x.billing_account_id for x in stack.lines],
            "sub": [x.sub_account_id for x in stack.lines],
            "service": [x.service_name for x in stack.lines],
            "category": [x.service_category for x in stack.lines],
            "charge": [x.charge_category for x in stack.lines],
            "resource": [x.resource_id for x in stack.lines],
            "region": [x.region for x in stack.lines],
            "usage_type": [x.usage_type for x in stack.lines],
            "day": [x.charge_date for x in stack.lines],
            "quantity": [x.pricing_quantity for x in stack.lines],
            "unit": [x.pricing_unit for x in stack.lines],
            "billed": [x.billed_cost for x in stack.lines],
            "currency": [x.currency for x in stack.lines],
        }
    )
    fees = stack.fees.assign(
        provider="aws", service=stack.fees.service, billed=stack.fees.fee, currency="USD"
    )
    return pd.concat([lines, fees[["provider", "service", "day", "billed", "currency"]]])


def days(data: pd.DataFrame, start: date, end: date) -> pd.DataFrame:
    return data[(data.day >= start) & (data.day < end)]


def total(values: pd.Series) -> Decimal:
    return sum(values, Decimal(0))


def machine_hours(rows: pd.DataFrame) -> pd.Series:
    """Compute usage priced by the hour (the demo's units: Hrs, hour, hours, 1 Hour)."""
    hourly = rows.unit.fillna("").str.lower().str.contains("hour") | (rows.unit == "Hrs")
    return (rows.category == "Compute") & (rows.charge == "Usage") & hourly


def expected_idle(data: pd.DataFrame) -> dict[Key, Decimal]:
    start = TODAY - timedelta(days=7)
    recent = days(data[data.resource.fillna("") != ""], start, TODAY)
    before = days(data[data.resource.fillna("") != ""], start - timedelta(days=30), start)
    computed = set(before[machine_hours(before)].resource)
    out = {}
    for resource, rows in recent.groupby("resource"):
        cost = total(rows.billed)
        usage = rows[rows.charge == "Usage"]
        zero = len(usage) > 0 and all(q == 0 for q in usage.quantity)
        stopped = not machine_hours(rows).any() and resource in computed
        if cost > 0 and rows.day.nunique() == 7 and (zero or stopped):
            out[("idle_resource", resource, resource)] = cost * 30 / 7
    return out


def expected_utilisation(stack: RecommendationStack) -> dict[Key, Decimal]:
    fees = days(stack.fees, TODAY - timedelta(days=30), TODAY)
    out = {}
    for (sub, service, _), rows in fees.groupby(["sub", "service", "charge_type"]):
        fee, unused = total(rows.fee), total(rows.unused)
        if 1 - unused / fee < Decimal("0.9"):  # the demo's threshold
            out[("low_commitment_utilisation", sub, service)] = unused * 30 / rows.day.nunique()
    return out


def expected_growth(data: pd.DataFrame) -> dict[Key, Decimal]:
    recent = days(data, TODAY - timedelta(days=35), TODAY).copy()
    recent["weeks_ago"] = [((TODAY - d).days - 1) // 7 for d in recent.day]
    # only the providers stored on each of the 35 days make the customer's total
    covered = recent.groupby(["provider", "currency"]).day.nunique()
    recent = recent[
        [covered[(p, c)] == 35 for p, c in zip(recent.provider, recent.currency, strict=True)]
    ]
    totals = recent.groupby(["currency", "weeks_ago"]).billed.apply(total)
    out = {}
    for (_, service, currency), rows in recent.groupby(["provider", "service", "currency"]):
        by_week = rows.groupby("weeks_ago").billed.apply(total)
        s = [by_week.get(w, Decimal(0)) for w in (4, 3, 2, 1, 0)]
        t = [totals.get((currency, w), Decimal(0)) for w in (4, 3, 2, 1, 0)]
        if min(s) <= 0 or min(t) <= 0:
            continue
        if all(s[k] / s[k - 1] - t[k] / t[k - 1] > Decimal("0.1") for k in range(1, 5)):
            excess = s[-1] - s[0] * t[-1] / t[0]
            out[("growing_service", service, "")] = excess * 30 / 7
    return out


def daily_lowest(rows: pd.DataFrame, column: str, lookback: int) -> Decimal:
    per_day = rows.groupby("day")[column].apply(total)
    return min(per_day) if len(per_day) == lookback else Decimal(0)


def expected_provider(data: pd.DataFrame) -> dict[Key, Decimal]:
    window = days(data[data.charge == "Usage"], TODAY - timedelta(days=30), TODAY)
    out: dict[Key, Decimal] = {}
    aws = window[window.provider == "aws"]
    # Savings Plan: the lowest day's on-demand Compute spend, 27% off for a year, no upfront.
    lowest = daily_lowest(aws[aws.category == "Compute"], "billed", 30)
    commitment = (lowest / 24 * Decimal("0.73")).quantize(Decimal("0.001"), rounding=ROUND_DOWN)
    cost = commitment * 730
    out[("savings_plan", "PAYER payer", "")] = (cost * Decimal("0.27") / Decimal("0.73")).quantize(
        Decimal("1e-10")
    )
    # Reservations: the lowest day's instances per type and region, 31% off on-demand.
    for service in ("Amazon Elastic Compute Cloud", "Amazon Relational Database Service"):
        machines = aws[(aws.service == service) & (aws.category.isin(["Compute", "Databases"]))]
        for (usage_type, region), rows in machines.groupby(["usage_type", "region"]):
            count = int(daily_lowest(rows, "quantity", 30) / 24)
            if count:
                rate = total(rows.billed) / total(rows.quantity)
                saving = (count * rate * 730 * Decimal("0.31")).quantize(Decimal("1e-10"))
                what = f"{usage_type.split(':', 1)[1]}/{REGION_NAMES[region]}"
                out[("reserved_instance", "PAYER payer", what)] = saving
    # Azure: the lowest day's VMs per size and region over 720 hours, 36% off for a year.
    vms = window[(window.provider == "azure") & (window.service == "Virtual Machines")]
    for (usage_type, region), rows in vms.groupby(["usage_type", "region"]):
        count = int(daily_lowest(rows, "quantity", 30) / 24)
        if count:
            without = count * (total(rows.billed) / total(rows.quantity)) * 720
            net = without - without * (1 - Decimal("0.36"))
            sku = "Standard_" + usage_type.replace(" ", "_")
            out[("reservation", "Shared", f"virtualmachines/{sku}/{region}")] = net * 730 / 720
    # GCP: the lowest day's cores per project and region, 37% off for 30 days, to the nano.
    gce = window[
        (window.provider == "gcp")
        & (window.service == "Compute Engine")
        & (window.category == "Compute")
    ]
    for (project, region), rows in gce.groupby(["sub", "region"]):
        cores = int(daily_lowest(rows, "quantity", 30) / 24)
        if cores:
            rate = total(rows.billed) / total(rows.quantity)
            saving = (cores * rate * 720 * Decimal("0.37")).quantize(Decimal("1e-9"))
            scope = f"projects/{project}/locations/{region}"
            out[("committed_use_discount", scope, "PURCHASE_COMMITMENT")] = saving
    return out


def listed(api: Api, provider: str = "all", **params: object) -> list[dict[str, object]]:
    answer = api.get(f"/api/v2/costs/demo/{provider}/recommendations", limit=1000, **params)
    assert answer.status_code == 200, answer.text
    data: list[dict[str, object]] = answer.json()["data"]
    return data


def by_key(items: list[dict[str, object]]) -> dict[Key, Decimal]:
    out = {}
    for item in items:
        saving = item["estimated_monthly_saving"]
        assert isinstance(saving, dict)
        out[(str(item["kind"]), str(item["scope"]), str(item["resource_id"]))] = Decimal(
            saving["amount"]
        )
    return out


def test_our_own_savings_are_the_ones_recomputed_from_the_bills(
    api: Api, stack: RecommendationStack
) -> None:
    data = frame(stack)
    expected = {**expected_idle(data), **expected_utilisation(stack), **expected_growth(data)}
    expected = {k: v.quantize(STORED) for k, v in expected.items() if v >= 1}
    own = [i for i in listed(api) if i["origin"] == "own"]
    assert {str(i["kind"]) for i in own} == {
        "idle_resource",
        "low_commitment_utilisation",
        "growing_service",
    }
    assert by_key(own) == expected


def test_the_providers_savings_are_the_ones_recomputed_from_the_bills(
    api: Api, stack: RecommendationStack
) -> None:
    expected = {k: v.quantize(STORED) for k, v in expected_provider(frame(stack)).items()}
    provided = [i for i in listed(api) if i["origin"] == "provider"]
    assert {str(i["kind"]) for i in provided} == {
        "savings_plan",
        "reserved_instance",
        "reservation",
        "committed_use_discount",
    }
    assert by_key(provided) == expected
    currencies = {(i["provider"], i["estimated_monthly_saving"]["currency"]) for i in provided}  # type: ignore[index]
    assert currencies == {("aws", "USD"), ("azure", "EUR"), ("gcp", "USD")}


def test_each_item_carries_its_evidence_first_sighting_and_validity(api: Api) -> None:
    for item in listed(api):
        assert item["evidence"] and item["still_valid"] is True
        assert str(item["first_seen"]) <= str(item["computed_at"])
    [plan] = [i for i in listed(api, "aws") if i["kind"] == "savings_plan"]
    evidence = plan["evidence"]
    assert isinstance(evidence, dict)
    assert evidence["EstimatedMonthlySavingsAmount"] == plan["estimated_monthly_saving"]["amount"]  # type: ignore[index]
    assert plan["source"] == "aws_cost_explorer" and plan["term"] == "ONE_YEAR"


def test_the_list_is_sorted_by_saving_and_paged(api: Api) -> None:
    everything = listed(api)
    amounts = [Decimal(i["estimated_monthly_saving"]["amount"]) for i in everything]  # type: ignore[index]
    assert amounts == sorted(amounts, reverse=True)
    ascending = [
        Decimal(i["estimated_monthly_saving"]["amount"]) for i in listed(api, sort="saving_asc")
    ]  # type: ignore[index]
    assert ascending == sorted(amounts)
    first = api.get("/api/v2/costs/demo/all/recommendations", limit=2).json()
    assert first["count"] == len(everything) and first["next_offset"] == 2
    second = api.get("/api/v2/costs/demo/all/recommendations", limit=2, offset=2).json()
    assert [i["id"] for i in first["data"] + second["data"]] == [i["id"] for i in everything[:4]]


def test_one_provider_lists_only_its_own_and_vultr_is_said_to_have_no_api(api: Api) -> None:
    assert {i["provider"] for i in listed(api, "gcp")} == {"gcp"}
    body = api.get("/api/v2/costs/demo/vultr/recommendations").json()
    [vultr, ours] = body["sources"]
    assert vultr["source"] == "none" and "Vultr offers no" in vultr["status"]
    assert ours["source"] == "cost_pipelines"
    usd = api.get("/api/v2/costs/demo/all/recommendations").json()["total_monthly_saving"]
    assert {t["currency"] for t in usd} == {"USD", "EUR"}


def test_the_read_apis_conventions_hold(api: Api) -> None:
    path = "/api/v2/costs/demo/all/recommendations"
    assert api.get(path, token=api.scoped_token).status_code == 403
    assert api.client.get(path).status_code == 401
    bad = api.get(path, sort="cheapest")
    assert bad.status_code == 422 and "sort" in bad.text
    assert api.get(path, limit=0).status_code == 422
    assert api.get(path, sorting="saving_desc").status_code == 422
    assert api.get("/api/v2/costs/demo/oracle/recommendations").status_code == 422
    never = api.get("/api/v2/costs/acme/all/recommendations").json()
    assert never["data"] == [] and never["count"] == 0 and never["as_of"] is None


def test_the_openapi_document_describes_the_read(api: Api) -> None:
    document = api.client.get("/openapi.json").json()
    operation = document["paths"]["/api/v2/costs/{customer_id}/{provider}/recommendations"]["get"]
    assert {"200", "401", "403", "422", "503"} <= operation["responses"].keys()
    names = {p["name"] for p in operation["parameters"]}
    assert names == {"customer_id", "provider", "sort", "limit", "offset"}
    assert all(p.get("description") for p in operation["parameters"])
    schemas = document["components"]["schemas"]
    assert "estimated_monthly_saving" in schemas["RecommendationPublic"]["properties"]


def test_a_recommendation_the_latest_run_no_longer_makes_is_listed_as_no_longer_valid(
    api: Api, stack: RecommendationStack, tmp_path: Path
) -> None:
    before = {i["id"]: i for i in listed(api)}
    [commitment] = [i for i in before.values() if i["kind"] == "low_commitment_utilisation"]
    document = yaml.safe_load(stack.customers_file.read_text())
    document["customers"]["demo"]["recommendations"]["min_utilisation"] = "0.5"
    original, stack.customers_file = stack.customers_file, tmp_path / "customers.yaml"
    stack.customers_file.write_text(yaml.safe_dump(document))
    try:
        stack.materialize()
    finally:
        stack.customers_file = original
    after = listed(api)
    gone = next(i for i in after if i["id"] == commitment["id"])
    assert gone["still_valid"] is False and gone["first_seen"] == commitment["first_seen"]
    assert after[-1]["id"] == gone["id"]  # the valid ones first
    assert all(i["still_valid"] for i in after if i["id"] != gone["id"])
    totals = api.get("/api/v2/costs/demo/aws/recommendations").json()["total_monthly_saving"]
    valid = sum(
        (
            Decimal(i["estimated_monthly_saving"]["amount"])
            for i in after
            if i["provider"] == "aws" and i["still_valid"]
        ),  # type: ignore[index]
        Decimal(0),
    )
    assert [(t["currency"], Decimal(t["amount"])) for t in totals] == [("USD", valid)]
