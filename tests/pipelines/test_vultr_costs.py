"""vultr_costs against the local Vultr billing API and the warehouse."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from cost_local.sandbox.bills import GeneratedLine, generate_bills, restate
from cost_local.sandbox.catalog import Account, demo_accounts
from cost_local.sandbox.vultr import VultrBilling
from cost_pipelines.assets.vultr import VULTR
from cost_pipelines.resources.clickhouse import ClickHouseResource
from cost_pipelines.resources.vultr import VultrResource
from tests.pipelines.rest_helpers import failure, metadata, run_costs
from tests.support.customers import write_customers

pytestmark = pytest.mark.slow
TODAY = date(2026, 10, 20)
START, END = date(2026, 9, 1), TODAY + timedelta(days=1)  # the default Vultr window
RESOURCE = VultrResource(retry_base_delay_s=0.01)


def account(customer_id: str) -> Account:
    return next(a for a in demo_accounts(customer_id) if a.provider == "vultr")


def entry(customer_id: str, key_env: str) -> dict[str, Any]:
    return {
        "providers": {
            "vultr": {
                "billing_account_ids": [account(customer_id).billing_account_id],
                "credentials": {"api_key": key_env},
                "endpoint_url_env": "TEST_VULTR_ENDPOINT",
            }
        }
    }


def bills(customer_id: str) -> list[GeneratedLine]:
    return generate_bills([account(customer_id)], date(2026, 7, 1), TODAY, seed=4)


def by_month_and_service(lines: Iterable[GeneratedLine]) -> dict[tuple[str, str], Decimal]:
    totals: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for line in lines:
        if START <= line.charge_date < END:
            totals[(line.charge_date.strftime("%Y-%m"), line.service_name)] += line.billed_cost
    return dict(totals)


def stored(warehouse: ClickHouseResource, customer_id: str) -> dict[tuple[str, str], Decimal]:
    rows = (
        warehouse.get_client()
        .query(
            "SELECT formatDateTime(ChargePeriodStart, '%Y-%m'), ServiceName, sum(BilledCost) "
            "FROM costs_current(customer_id={c:String}) WHERE provider = 'vultr' GROUP BY 1, 2",
            parameters={"c": customer_id},
        )
        .result_rows
    )
    return {(month, service): Decimal(total) for month, service, total in rows}


@pytest.fixture
def vultr(monkeypatch: pytest.MonkeyPatch) -> Iterator[VultrBilling]:
    keys = {
        "KEY-GLOBEX": account("globex").billing_account_id,
        "KEY-UMBRELLA": account("umbrella").billing_account_id,
    }
    assert len(set(keys.values())) == 2
    with VultrBilling(keys, [*bills("globex"), *bills("umbrella")], today=TODAY) as server:
        monkeypatch.setenv("TEST_VULTR_ENDPOINT", server.base_url)
        monkeypatch.setenv("GLOBEX_KEY", "KEY-GLOBEX")
        monkeypatch.setenv("UMBRELLA_KEY", "KEY-UMBRELLA")
        monkeypatch.setenv("REVOKED_KEY", "KEY-REVOKED")
        yield server


def test_invoices_and_pending_charges_are_stored_to_the_last_decimal(
    tmp_path: Path, vultr: VultrBilling, warehouse_resource: ClickHouseResource
) -> None:
    customers = write_customers(tmp_path / "c.yaml", {"globex": entry("globex", "GLOBEX_KEY")})

    [result] = run_costs(
        VULTR, RESOURCE, customers, ["globex"], warehouse_resource, START, END
    ).values()

    assert result.success
    expected = by_month_and_service(bills("globex"))
    assert stored(warehouse_resource, "globex") == expected
    assert {month for month, _ in expected} == {"2026-09", "2026-10"}
    estimated = (
        warehouse_resource.get_client()
        .query(
            "SELECT DISTINCT formatDateTime(ChargePeriodStart, '%Y-%m') "
            "FROM costs_current(customer_id={c:String}) WHERE x_Estimated",
            parameters={"c": "globex"},
        )
        .result_rows
    )
    assert estimated == [("2026-10",)]  # the pending month only
    # The invoice list stops at August's invoice: no items asked for older months.
    items_asked = [r.path for r in vultr.requests if r.path.endswith("/items")]
    assert len(items_asked) == 1
    assert metadata(result)["api_requests"] == len(vultr.requests)


def test_rate_limited_requests_are_retried(
    tmp_path: Path, vultr: VultrBilling, warehouse_resource: ClickHouseResource
) -> None:
    customers = write_customers(tmp_path / "c.yaml", {"globex": entry("globex", "GLOBEX_KEY")})
    vultr.throttle(2)

    [result] = run_costs(
        VULTR, RESOURCE, customers, ["globex"], warehouse_resource, START, END
    ).values()

    assert result.success
    assert stored(warehouse_resource, "globex") == by_month_and_service(bills("globex"))


def test_changed_pending_charges_replace_the_earlier_ones(
    tmp_path: Path, vultr: VultrBilling, warehouse_resource: ClickHouseResource
) -> None:
    customers = write_customers(tmp_path / "c.yaml", {"globex": entry("globex", "GLOBEX_KEY")})
    run_costs(VULTR, RESOURCE, customers, ["globex"], warehouse_resource, START, END)
    changed = restate(bills("globex"), [account("globex")], since=date(2026, 10, 1), seed=3)
    vultr.set_lines([*changed, *bills("umbrella")])

    run_costs(VULTR, RESOURCE, customers, ["globex"], warehouse_resource, START, END)

    assert stored(warehouse_resource, "globex") == by_month_and_service(changed)


def test_a_revoked_key_fails_that_customer_and_the_other_one_loads(
    tmp_path: Path, vultr: VultrBilling, warehouse_resource: ClickHouseResource
) -> None:
    customers = write_customers(
        tmp_path / "c.yaml",
        {"globex": entry("globex", "REVOKED_KEY"), "umbrella": entry("umbrella", "UMBRELLA_KEY")},
    )

    results = run_costs(
        VULTR, RESOURCE, customers, ["globex", "umbrella"], warehouse_resource, START, END
    )

    message = failure(results["globex"])
    assert "Vultr rejected the credentials of customer 'globex'" in message
    assert "Invalid API token." in message and "KEY-REVOKED" not in message
    assert results["umbrella"].success
    assert stored(warehouse_resource, "umbrella") == by_month_and_service(bills("umbrella"))
