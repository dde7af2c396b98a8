"""azure_costs against the local Azure (Entra token + Cost Management query) and the warehouse:
stored FOCUS sums equal the sandbox's own ledger of what Microsoft's semantics imply."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from dagster import ExecuteInProcessResult

from cost_local.sandbox.azure import AzureApp, AzureCostManagement
from cost_local.sandbox.azure_billing import CostRecord, cost_records, ledger, ledger_sums
from cost_local.sandbox.bills import generate_bills, restate
from cost_local.sandbox.catalog import Account, demo_accounts
from cost_pipelines.assets import azure as azure_asset
from cost_pipelines.assets.azure import AZURE
from cost_pipelines.assets.collection import DateWindow, trailing_window
from cost_pipelines.customers import AzureConfig
from cost_pipelines.resources.azure import AzureResource
from cost_pipelines.resources.clickhouse import ClickHouseResource
from tests.pipelines.rest_helpers import amounts as _amounts
from tests.pipelines.rest_helpers import (
    failure,
    metadata,
    run_costs,
    stored_by_day_and_service,
)
from tests.support.customers import write_customers

pytestmark = pytest.mark.slow
START, END = date(2026, 10, 1), date(2026, 10, 15)
BILLS_START = date(2026, 9, 1)  # the bills start a month earlier, for windows over 31 days
SECRET = "az-secret-value-1"
APP = AzureApp("tenant-a", "client-a", SECRET)
RESOURCE = AzureResource(retry_base_delay_s=0.01)


def account(customer_id: str) -> Account:
    return next(a for a in demo_accounts(customer_id) if a.provider == "azure")


def entry(customer_id: str, secret_env: str = "AZ_SECRET") -> dict[str, Any]:
    return {
        "providers": {
            "azure": {
                "billing_account_ids": [account(customer_id).billing_account_id],
                "credentials": {
                    "tenant_id": "AZ_TENANT",
                    "client_id": "AZ_CLIENT",
                    "client_secret": secret_env,
                },
                "endpoint_url_env": "TEST_AZURE_ENDPOINT",
            }
        }
    }


def bills(customer_id: str) -> list[CostRecord]:
    seed = {"contoso": 5, "fabrikam": 6}[customer_id]
    return cost_records(generate_bills([account(customer_id)], BILLS_START, END, seed=seed))


@pytest.fixture
def page_size() -> int:
    return 40


@pytest.fixture
def azure(monkeypatch: pytest.MonkeyPatch, page_size: int) -> Iterator[AzureCostManagement]:
    records = [*bills("contoso"), *bills("fabrikam")]
    with AzureCostManagement([APP], page_size=page_size, qpu_per_10_seconds=1000) as server:
        server.set_records(records)
        monkeypatch.setenv("TEST_AZURE_ENDPOINT", server.base_url)
        monkeypatch.setenv("AZ_TENANT", APP.tenant_id)
        monkeypatch.setenv("AZ_CLIENT", APP.client_id)
        monkeypatch.setenv("AZ_SECRET", SECRET)
        monkeypatch.setenv("AZ_WRONG_SECRET", "not-the-secret")
        yield server


def stored_sums(
    warehouse: ClickHouseResource, customer_id: str
) -> dict[tuple[str, str, str, str], Decimal]:
    """Per (day, service, charge category, cost column) what readers see; a column stored NULL
    on every line of a group is absent."""
    rows = (
        warehouse.get_client()
        .query(
            "SELECT toString(toDate(ChargePeriodStart)), ServiceName, ChargeCategory, "
            "sum(BilledCost), sum(EffectiveCost), sum(ListCost), sum(ContractedCost) "
            "FROM costs_current(customer_id={customer_id:String}) "
            "WHERE provider = 'azure' GROUP BY 1, 2, 3",
            parameters={"customer_id": customer_id},
        )
        .result_rows
    )
    out: dict[tuple[str, str, str, str], Decimal] = {}
    columns = ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost")
    for day, service, category, *amounts in rows:
        for column, amount in zip(columns, amounts, strict=True):
            if amount is not None:
                out[(day, service, category, column)] = Decimal(amount)
    return out


def expected_sums(
    records: Iterable[CostRecord], start: date, end: date
) -> dict[tuple[str, str, str, str], Decimal]:
    return ledger_sums(records, start, end)


def billed_by_day_and_service_of(
    records: Iterable[CostRecord], start: date, end: date
) -> dict[tuple[str, str], Decimal]:
    totals: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for line in ledger(records, start, end):
        totals[(line.day.isoformat(), line.service_name)] += line.billed_cost
    return {k: v for k, v in totals.items() if v}


def checks(result: ExecuteInProcessResult) -> dict[str, Any]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def collect(
    warehouse: ClickHouseResource, customers: Path, start: date = START, end: date = END
) -> ExecuteInProcessResult:
    [result] = run_costs(AZURE, RESOURCE, customers, ["contoso"], warehouse, start, end).values()
    return result


def test_stored_costs_equal_the_ledger_per_day_service_category_and_cost_column(
    tmp_path: Path, azure: AzureCostManagement, warehouse_resource: ClickHouseResource
) -> None:
    customers = write_customers(tmp_path / "c.yaml", {"contoso": entry("contoso")})

    result = collect(warehouse_resource, customers)

    assert result.success
    expected = expected_sums(bills("contoso"), START, END)
    assert stored_sums(warehouse_resource, "contoso") == expected  # List/Contracted all NULL
    categories = {key[2] for key in expected}
    assert categories == {"Usage", "Purchase"}  # Azure has no credits and no tax
    billed = billed_by_day_and_service_of(bills("contoso"), START, END)
    meta = metadata(result)
    assert _amounts(meta["totals"]) == {"EUR": sum(billed.values())}
    assert stored_by_day_and_service(warehouse_resource, "contoso", "azure") == billed
    assert meta["api_requests"] > 8  # a token, then several pages of the queries
    assert meta["source"] == "azure_cost_management"
    evaluations = checks(result)
    assert evaluations["focus_conformance"].passed, evaluations["focus_conformance"].description
    assert evaluations["reconciles_with_provider"].passed


def test_charge_types_become_focus_categories_never_the_sign(
    tmp_path: Path, azure: AzureCostManagement, warehouse_resource: ClickHouseResource
) -> None:
    customers = write_customers(tmp_path / "c.yaml", {"contoso": entry("contoso")})

    assert collect(warehouse_resource, customers).success

    rows = (
        warehouse_resource.get_client()
        .query(
            "SELECT x_ChargeType, ChargeCategory, ChargeClass, ResourceId = '', "
            "sum(BilledCost), sum(EffectiveCost), countIf(ListCost IS NOT NULL) "
            "+ countIf(ContractedCost IS NOT NULL) "
            "FROM costs_current(customer_id='contoso') GROUP BY 1, 2, 3, 4"
        )
        .result_rows
    )
    by_type = {row[0]: row[1:] for row in rows}
    assert set(by_type) == {"Usage", "Purchase", "Refund", "UnusedReservation", "UnusedSavingsPlan"}
    assert by_type["Usage"][:3] == ("Usage", None, False)
    assert by_type["Purchase"][:3] == ("Purchase", None, True)
    assert by_type["Purchase"][3] > 0 and by_type["Purchase"][4] == 0  # paid, not amortized
    assert by_type["Refund"][:3] == ("Purchase", "Correction", True)
    assert by_type["Refund"][3] < 0 and by_type["Refund"][4] == 0
    for unused in ("UnusedReservation", "UnusedSavingsPlan"):
        assert by_type[unused][:2] == ("Usage", None)
        assert by_type[unused][3] == 0 and by_type[unused][4] > 0  # amortized only
    assert all(row[-1] == 0 for row in rows)  # no ListCost or ContractedCost anywhere


def test_one_resource_in_two_casings_is_one_resource(
    tmp_path: Path, azure: AzureCostManagement, warehouse_resource: ClickHouseResource
) -> None:
    customers = write_customers(tmp_path / "c.yaml", {"contoso": entry("contoso")})
    records = [r for r in bills("contoso") if START <= r.day < END and r.resource_id]
    casings = {r.resource_id for r in records}
    resources = {r.resource_id.lower() for r in records}
    assert len(casings) > len(resources)  # the sandbox writes some resources in two casings

    result = collect(warehouse_resource, customers)

    assert checks(result)["focus_conformance"].passed  # no line key twice
    client = warehouse_resource.get_client()
    stored = client.query(
        "SELECT ResourceId, SubAccountId, sum(BilledCost), sum(EffectiveCost), "
        "uniqExact(RegionId), any(RegionId), any(SubAccountName) "
        "FROM costs_current(customer_id='contoso') WHERE ResourceId != '' GROUP BY 1, 2"
    ).result_rows
    assert {row[0] for row in stored} == resources
    expected: dict[str, list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for line in ledger(records, START, END):
        expected[line.resource_id][0] += line.billed_cost
        expected[line.resource_id][1] += line.effective_cost
    regions = {r.resource_id.lower(): r.location for r in records}
    names = {r.subscription_id: r.subscription_name for r in records}
    for resource, sub, billed, effective, region_count, region, sub_name in stored:
        assert [billed, effective] == expected[resource]
        assert resource.split("/")[2] == sub and sub_name == names[sub]
        assert region_count == 1 and region == regions[resource]


def test_a_window_longer_than_31_days_is_collected_completely(
    tmp_path: Path, azure: AzureCostManagement, warehouse_resource: ClickHouseResource
) -> None:
    customers = write_customers(tmp_path / "c.yaml", {"contoso": entry("contoso")})
    start, end = BILLS_START, BILLS_START + timedelta(days=36)

    result = collect(warehouse_resource, customers, start, end)

    assert result.success
    assert stored_sums(warehouse_resource, "contoso") == expected_sums(bills("contoso"), start, end)
    assert metadata(result)["window_start"] == start.isoformat()
    assert checks(result)["reconciles_with_provider"].passed


@pytest.mark.parametrize("page_size", [100_000])
def test_requests_per_run_for_a_36_day_window(
    tmp_path: Path, azure: AzureCostManagement, warehouse_resource: ClickHouseResource
) -> None:
    customers = write_customers(tmp_path / "c.yaml", {"contoso": entry("contoso")})
    start, end = BILLS_START, BILLS_START + timedelta(days=36)

    result = collect(warehouse_resource, customers, start, end)

    # A token, then per period of at most a month ([Sep 1, Oct 1) and [Oct 1, Oct 7)) 2 x 2
    # grouped queries and 1 ungrouped one, plus 2 label queries for the whole window.
    assert metadata(result)["api_requests"] == 1 + 2 * 5 + 2 == len(azure.requests)


def test_a_truncated_answer_never_wipes_the_days_it_left_out(
    tmp_path: Path,
    azure: AzureCostManagement,
    warehouse_resource: ClickHouseResource,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    customers = write_customers(tmp_path / "c.yaml", {"contoso": entry("contoso")})
    start, end = BILLS_START, BILLS_START + timedelta(days=36)
    assert collect(warehouse_resource, customers, start, end).success
    # A collector asking Azure for 36 days in one Daily query: Azure answers from
    # `to - 1 month + 1 day` (Sep 6 + 1 = Sep 7) only.
    monkeypatch.setattr(azure_asset, "periods", lambda window: [window])
    doubled = [
        r if r.actual is None else CostRecord(**{**r.__dict__, "actual": r.actual * 2})
        for r in bills("contoso")
    ]
    azure.set_records(doubled)

    result = collect(warehouse_resource, customers, start, end)

    assert result.success
    assert metadata(result)["window_start"] == "2026-09-07"  # shrunk: the first answered day
    stored = stored_sums(warehouse_resource, "contoso")
    before = expected_sums(bills("contoso"), start, date(2026, 9, 7))
    assert {k: v for k, v in stored.items() if k[0] < "2026-09-07"} == before  # kept
    after = expected_sums(doubled, date(2026, 9, 7), end)
    assert {k: v for k, v in stored.items() if k[0] >= "2026-09-07"} == after  # replaced


def test_a_later_period_answered_from_a_later_day_fails_and_replaces_nothing(
    tmp_path: Path,
    azure: AzureCostManagement,
    warehouse_resource: ClickHouseResource,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    customers = write_customers(tmp_path / "c.yaml", {"contoso": entry("contoso")})
    start, end = BILLS_START, END
    assert collect(warehouse_resource, customers, start, end).success
    before = stored_sums(warehouse_resource, "contoso")
    split = date(2026, 9, 10)  # the second period asks 35 days: Azure cuts it to Sep 15..
    monkeypatch.setattr(
        azure_asset,
        "periods",
        lambda window: [DateWindow(window.start, split), DateWindow(split, window.end)],
    )

    result = collect(warehouse_resource, customers, start, end)

    assert not result.success
    message = failure(result)
    assert "account " + account("contoso").billing_account_id in message
    assert "[2026-09-10, 2026-09-15) were not answered" in message
    assert stored_sums(warehouse_resource, "contoso") == before


def test_a_total_that_differs_fails_reconciliation_naming_the_day(
    tmp_path: Path, azure: AzureCostManagement, warehouse_resource: ClickHouseResource
) -> None:
    customers = write_customers(tmp_path / "c.yaml", {"contoso": entry("contoso")})
    azure.total_offsets[date(2026, 10, 4)] = Decimal("0.0000000001")

    result = collect(warehouse_resource, customers)

    check = checks(result)["reconciles_with_provider"]
    assert not check.passed
    billing_account = account("contoso").billing_account_id
    assert check.description.startswith(f"contoso/azure account {billing_account} 2026-10-04:")
    assert check.description.endswith("(difference -0.0000000001)")
    assert check.metadata["differences"].value == 1


def test_a_day_missing_from_the_grouped_answers_fails_reconciliation(
    tmp_path: Path, azure: AzureCostManagement, warehouse_resource: ClickHouseResource
) -> None:
    customers = write_customers(tmp_path / "c.yaml", {"contoso": entry("contoso")})
    azure.hidden_days.add(date(2026, 10, 8))

    result = collect(warehouse_resource, customers)

    check = checks(result)["reconciles_with_provider"]
    assert not check.passed
    billing_account = account("contoso").billing_account_id
    assert f"contoso/azure account {billing_account} 2026-10-08: stored 0 EUR" in check.description


def test_a_throttled_query_waits_for_the_quota_and_the_costs_arrive(
    tmp_path: Path, azure: AzureCostManagement, warehouse_resource: ClickHouseResource
) -> None:
    customers = write_customers(tmp_path / "c.yaml", {"contoso": entry("contoso")})
    azure.throttle(1, retry_after=1)

    [result] = run_costs(
        AZURE, RESOURCE, customers, ["contoso"], warehouse_resource, START, END
    ).values()

    assert result.success
    assert azure.pending_throttles == 0  # the 429 was answered, waited out and retried
    assert metadata(result)["api_requests"] == len(azure.requests)  # the retry counts too


def test_a_restated_window_leaves_only_the_new_numbers(
    tmp_path: Path, azure: AzureCostManagement, warehouse_resource: ClickHouseResource
) -> None:
    customers = write_customers(tmp_path / "c.yaml", {"contoso": entry("contoso")})
    run_costs(AZURE, RESOURCE, customers, ["contoso"], warehouse_resource, START, END)
    lines = generate_bills([account("contoso")], BILLS_START, END, seed=5)
    restated = restate(lines, [account("contoso")], since=END - timedelta(days=4), seed=9)
    azure.set_lines(restated)

    [result] = run_costs(
        AZURE, RESOURCE, customers, ["contoso"], warehouse_resource, START, END
    ).values()

    assert result.success
    records = cost_records(restated)
    assert stored_sums(warehouse_resource, "contoso") == expected_sums(records, START, END)
    expected = billed_by_day_and_service_of(records, START, END)
    assert stored_by_day_and_service(warehouse_resource, "contoso", "azure") == expected


def test_a_wrong_client_secret_fails_that_customer_only_and_never_shows_the_secret(
    tmp_path: Path, azure: AzureCostManagement, warehouse_resource: ClickHouseResource
) -> None:
    customers = write_customers(
        tmp_path / "c.yaml",
        {"contoso": entry("contoso", "AZ_WRONG_SECRET"), "fabrikam": entry("fabrikam")},
    )

    results = run_costs(
        AZURE, RESOURCE, customers, ["contoso", "fabrikam"], warehouse_resource, START, END
    )

    assert not results["contoso"].success
    message = failure(results["contoso"])
    assert "Entra ID rejected the credentials of customer 'contoso'" in message
    assert "invalid_client" in message and "not-the-secret" not in message
    assert results["fabrikam"].success
    assert stored_by_day_and_service(
        warehouse_resource, "fabrikam", "azure"
    ) == billed_by_day_and_service_of(bills("fabrikam"), START, END)


@pytest.mark.parametrize(
    ("today", "first_day", "periods"),
    [
        (date(2026, 12, 10), date(2026, 11, 1), 2),  # the previous month until the 10th
        (date(2026, 12, 11), date(2026, 12, 1), 1),  # then the month to date
        (date(2026, 12, 31), date(2026, 12, 1), 1),
        (date(2026, 3, 1), date(2026, 2, 1), 2),
    ],
)
def test_azure_re_collects_the_open_month_and_the_previous_one_until_the_10th(
    today: date, first_day: date, periods: int
) -> None:
    config = AzureConfig(billing_account_ids=("1",))
    window = trailing_window(today, config)
    assert window == DateWindow(first_day, today + timedelta(days=1))
    chunks = azure_asset.periods(window)
    assert len(chunks) == periods and all(p.start.day == 1 for p in chunks)  # calendar months
