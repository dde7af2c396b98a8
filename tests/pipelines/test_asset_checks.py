"""Each window check fails on purpose when its rule is broken, naming customer, provider, account,
day and what is wrong, and the rows it found wanting stay stored (nothing is lost)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from dagster import ConfigurableResource, ExecuteInProcessResult

from cost_pipelines.assets.collection import DateWindow, Fetched
from cost_pipelines.assets.vultr import VULTR
from cost_pipelines.resources.clickhouse import ClickHouseResource
from tests.pipelines.rest_helpers import run_costs
from tests.support.customers import write_customers

ACCOUNT = "acct-1"
START, END = date(2026, 10, 1), date(2026, 10, 4)
DAYS = [date(2026, 10, 1), date(2026, 10, 2), date(2026, 10, 3)]


class CannedSessions(ConfigurableResource):  # type: ignore[type-arg]
    """A provider resource whose sessions are nothing: the spec's fetch returns canned rows."""

    @contextmanager
    def session(self, customer_id: str, config: Any) -> Iterator[None]:
        yield None


def _lines(**changes: Any) -> pd.DataFrame:
    rows = pd.DataFrame(
        {
            "BillingAccountId": [ACCOUNT] * 3,
            "ChargePeriodStart": [d.isoformat() for d in DAYS],
            "BilledCost": ["10.5", "11.25", "0.000000000001"],
            "BillingCurrency": ["USD"] * 3,
            "ServiceName": ["Cloud Compute"] * 3,
            "ServiceCategory": ["Compute"] * 3,
            "ChargeCategory": ["Usage"] * 3,
            "ResourceId": ["vm-1", "vm-1", "vm-2"],
        }
    )
    for column, (index, value) in changes.items():
        rows.loc[index, column] = value
    return rows


def _reference(changed: dict[date, str] | None = None) -> dict[tuple[str, date, str], Decimal]:
    """The provider's own per-day totals of `_lines()`, with some days changed."""
    amounts = dict(zip(DAYS, ["10.5", "11.25", "0.000000000001"], strict=True))
    amounts.update(changed or {})
    return {(ACCOUNT, day, "USD"): Decimal(amount) for day, amount in amounts.items()}


@pytest.fixture
def customers_file(tmp_path: Path) -> Path:
    entry = {"billing_account_ids": [ACCOUNT], "credentials": {"api_key": "UNUSED_KEY"}}
    return write_customers(tmp_path / "customers.yaml", {"acme": {"providers": {"vultr": entry}}})


def _collect(
    customers_file: Path,
    warehouse: ClickHouseResource,
    rows: pd.DataFrame,
    reference: dict[tuple[str, date, str], Decimal],
) -> ExecuteInProcessResult:
    def fetch(window: DateWindow, config: Any, session: Any) -> Fetched:
        return Fetched(rows, 1, "canned", reference_totals=reference, reference_source="invoice")

    spec = replace(VULTR, fetch=fetch, resource=CannedSessions())
    [result] = run_costs(
        spec, CannedSessions(), customers_file, ["acme"], warehouse, START, END
    ).values()
    return result


def _checks(result: ExecuteInProcessResult) -> dict[str, Any]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def _stored_lines(warehouse: ClickHouseResource) -> int:
    query = "SELECT count() FROM costs_current(customer_id = 'acme')"
    return int(warehouse.get_client().query(query).result_rows[0][0])


def test_a_conformant_window_that_equals_the_providers_total_passes_both_checks(
    customers_file: Path, warehouse_resource: ClickHouseResource
) -> None:
    result = _collect(customers_file, warehouse_resource, _lines(), _reference())
    checks = _checks(result)
    assert result.success
    assert checks["focus_conformance"].passed and checks["reconciles_with_provider"].passed


def test_a_charge_category_focus_does_not_know_fails_conformance_and_the_run(
    customers_file: Path, warehouse_resource: ClickHouseResource
) -> None:
    rows = _lines(ChargeCategory=(1, "Refund"), ServiceCategory=(2, ""))
    result = _collect(customers_file, warehouse_resource, rows, _reference())
    check = _checks(result)["focus_conformance"]
    assert not result.success  # blocking: nothing downstream reads this window
    assert not check.passed
    assert check.description == (
        'acme/vultr account acct-1 2026-10-02: ChargeCategory "Refund" is not a FOCUS value '
        "(1 line)"
    )
    assert check.metadata["findings"].value == 2
    assert 'ServiceCategory "" is not a FOCUS value' in check.metadata["first_findings"].value
    assert _stored_lines(warehouse_resource) == 3  # stored as collected: nothing is lost


def test_a_list_cost_missing_on_one_line_of_a_source_that_has_them_fails_conformance(
    customers_file: Path, warehouse_resource: ClickHouseResource
) -> None:
    rows = _lines().assign(ListCost=["12", "13", None], ContractedCost=["10.5", "11.25", None])
    result = _collect(customers_file, warehouse_resource, rows, _reference())
    check = _checks(result)["focus_conformance"]
    assert not check.passed
    assert check.description == (
        "acme/vultr account acct-1 2026-10-03: ContractedCost is null on a line of a source "
        "that supplies it (1 line)"
    )
    assert check.metadata["findings"].value == 2  # and the ListCost of the same line


def test_the_same_line_twice_fails_conformance_naming_the_day(
    customers_file: Path, warehouse_resource: ClickHouseResource
) -> None:
    rows = _lines(ResourceId=(2, "vm-1"), ChargePeriodStart=(2, DAYS[1].isoformat()))
    result = _collect(customers_file, warehouse_resource, rows, _reference())
    check = _checks(result)["focus_conformance"]
    assert not check.passed
    assert check.description == (
        "acme/vultr account acct-1 2026-10-02: the same line key appears more than once (1 line)"
    )


def test_a_total_that_differs_by_the_smallest_amount_fails_reconciliation_with_the_difference(
    customers_file: Path, warehouse_resource: ClickHouseResource
) -> None:
    reference = _reference({DAYS[1]: "11.250000000001"})
    result = _collect(customers_file, warehouse_resource, _lines(), reference)
    check = _checks(result)["reconciles_with_provider"]
    assert result.success  # not blocking: the stored lines are the provider's own
    assert not check.passed
    assert check.description == (
        "acme/vultr account acct-1 2026-10-02: stored 11.25 USD, invoice 11.250000000001 "
        "(difference -0.000000000001)"
    )


def test_a_day_the_provider_has_cost_for_but_the_store_has_not_fails_reconciliation(
    customers_file: Path, warehouse_resource: ClickHouseResource
) -> None:
    rows = _lines().iloc[:2]  # the third day's lines went missing
    result = _collect(customers_file, warehouse_resource, rows, _reference())
    check = _checks(result)["reconciles_with_provider"]
    assert not check.passed
    assert check.description == (
        "acme/vultr account acct-1 2026-10-03: stored 0 USD, invoice 0.000000000001 "
        "(difference -0.000000000001)"
    )
    assert check.metadata["differences"].value == 1
