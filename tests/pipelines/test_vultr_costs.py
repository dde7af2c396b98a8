"""vultr_costs against the local Vultr billing API and the warehouse: stored sums per day,
service, charge category and cost column equal the sandbox's own ledger to the last decimal."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from dagster import ExecuteInProcessResult

from cost_local.sandbox.bills import GeneratedLine, generate_bills, restate
from cost_local.sandbox.catalog import Account, demo_accounts
from cost_local.sandbox.vultr import Handover, VultrBilling
from cost_local.sandbox.vultr_ledger import Ledger, billed_by_month, estimated_days, ledger
from cost_pipelines.assets import vultr as vultr_asset
from cost_pipelines.assets.checks import CONFORMANCE, RECONCILIATION
from cost_pipelines.assets.vultr import VULTR
from cost_pipelines.resources.clickhouse import ClickHouseResource
from cost_pipelines.resources.vultr import VultrResource
from tests.pipelines.rest_helpers import check_evaluation, failure, metadata, run_costs
from tests.support.customers import write_customers

pytestmark = pytest.mark.slow
TODAY = date(2026, 10, 20)
START, END = date(2026, 9, 1), TODAY + timedelta(days=1)  # the default Vultr window
RESOURCE = VultrResource(retry_base_delay_s=0.01)


def account(customer_id: str) -> Account:
    return next(a for a in demo_accounts(customer_id) if a.provider == "vultr")


def account_id(customer_id: str) -> str:
    return account(customer_id).billing_account_id


def entry(customer_id: str, key_env: str) -> dict[str, Any]:
    return {
        "providers": {
            "vultr": {
                "billing_account_ids": [account_id(customer_id)],
                "credentials": {"api_key": key_env},
                "endpoint_url_env": "TEST_VULTR_ENDPOINT",
            }
        }
    }


def bills(customer_id: str, until: date = TODAY) -> list[GeneratedLine]:
    return generate_bills([account(customer_id)], date(2026, 7, 1), until, seed=4)


_STORED_SQL = """
SELECT toDate(ChargePeriodStart), ServiceName, ChargeCategory, sum(BilledCost),
       sum(EffectiveCost), sum(ContractedCost), sumIf(ListCost, ListCost IS NOT NULL),
       countIf(ListCost IS NOT NULL)
FROM costs_current(customer_id={c:String}) WHERE provider = 'vultr'
  AND ChargePeriodStart >= {start:DateTime('UTC')} AND ChargePeriodStart < {end:DateTime('UTC')}
GROUP BY 1, 2, 3
"""


def stored(
    warehouse: ClickHouseResource, customer_id: str, start: date = START, end: date = END
) -> Ledger:
    """Per day, service and charge category: each cost column's stored sum."""
    rows = (
        warehouse.get_client()
        .query(
            _STORED_SQL,
            parameters={
                "c": customer_id,
                "start": datetime.combine(start, datetime.min.time()),
                "end": datetime.combine(end, datetime.min.time()),
            },
        )
        .result_rows
    )
    out: Ledger = {}
    for day, service, category, billed, effective, contracted, listed, with_list in rows:
        cell = {
            "BilledCost": Decimal(billed),
            "EffectiveCost": Decimal(effective),
            "ContractedCost": Decimal(contracted),
        }
        if with_list:
            cell["ListCost"] = Decimal(listed)
        out[(day, service, category)] = cell
    return out


def stored_estimated_days(warehouse: ClickHouseResource, customer_id: str) -> set[date]:
    rows = (
        warehouse.get_client()
        .query(
            "SELECT DISTINCT toDate(ChargePeriodStart) FROM costs_current(customer_id={c:String}) "
            "WHERE provider = 'vultr' AND x_Estimated",
            parameters={"c": customer_id},
        )
        .result_rows
    )
    return {day for (day,) in rows}


def only_months(book: Ledger, *months: str) -> Ledger:
    return {k: v for k, v in book.items() if k[0].strftime("%Y-%m") in months}


@pytest.fixture
def vultr(monkeypatch: pytest.MonkeyPatch) -> Iterator[VultrBilling]:
    keys = {"KEY-GLOBEX": account_id("globex"), "KEY-UMBRELLA": account_id("umbrella")}
    assert len(set(keys.values())) == 2
    with VultrBilling(keys, [*bills("globex"), *bills("umbrella")], today=TODAY) as server:
        monkeypatch.setenv("TEST_VULTR_ENDPOINT", server.base_url)
        monkeypatch.setenv("GLOBEX_KEY", "KEY-GLOBEX")
        monkeypatch.setenv("UMBRELLA_KEY", "KEY-UMBRELLA")
        monkeypatch.setenv("REVOKED_KEY", "KEY-REVOKED")
        # The collector's clock is the sandbox's: pending charges accrue up to its moment.
        monkeypatch.setattr(vultr_asset, "utc_now", lambda: server.now)
        yield server


@pytest.fixture
def globex(tmp_path: Path) -> Path:
    return write_customers(tmp_path / "c.yaml", {"globex": entry("globex", "GLOBEX_KEY")})


def collect(
    customers: Path, warehouse: ClickHouseResource, start: date = START, end: date = END
) -> ExecuteInProcessResult:
    [result] = run_costs(VULTR, RESOURCE, customers, ["globex"], warehouse, start, end).values()
    return result


def at(vultr: VultrBilling, moment: datetime, lines: list[GeneratedLine]) -> None:
    vultr.now = moment
    vultr.set_lines(lines)


@pytest.mark.parametrize("pending_end", ["now", "month_end"])
def test_invoices_and_pending_charges_are_stored_to_the_last_decimal(
    pending_end: str, globex: Path, vultr: VultrBilling, warehouse_resource: ClickHouseResource
) -> None:
    vultr.pending_end = "now" if pending_end == "now" else "month_end"

    result = collect(globex, warehouse_resource)

    assert result.success
    expected = ledger(vultr, account_id("globex"), START, END)
    assert stored(warehouse_resource, "globex") == expected
    assert {k[2] for k in expected} == {"Usage", "Credit"}
    assert {month for month in billed_by_month(expected)} == {"2026-09", "2026-10"}
    # Spread over the days they cover: every day of September, October up to yesterday.
    assert {k[0] for k in expected} == {START + timedelta(days=i) for i in range(49)}
    assert stored_estimated_days(warehouse_resource, "globex") == estimated_days(
        vultr, account_id("globex")
    )
    assert {d.month for d in stored_estimated_days(warehouse_resource, "globex")} == {10}
    # The invoice list stops at August's invoice: no items asked for older months.
    items_asked = [r.path for r in vultr.requests if r.path.endswith("/items")]
    assert len(items_asked) == 1
    # Invoice list, September's items, pending charges, the account's pending total.
    assert metadata(result)["api_requests"] == len(vultr.requests) == 4
    assert metadata(result)["lines_outside_window"] == 0
    assert check_evaluation(result, CONFORMANCE).passed
    assert check_evaluation(result, RECONCILIATION).passed


def test_lines_are_marked_spread_over_their_period(
    globex: Path, vultr: VultrBilling, warehouse_resource: ClickHouseResource
) -> None:
    collect(globex, warehouse_resource)

    rows = (
        warehouse_resource.get_client()
        .query(
            "SELECT DISTINCT toDate(x_SpreadPeriodStart), toDate(x_SpreadPeriodEnd) "
            "FROM costs_current(customer_id={c:String}) WHERE ChargeCategory = 'Credit'",
            parameters={"c": "globex"},
        )
        .result_rows
    )
    # September's discount covers the whole month, October's the days so far.
    assert sorted(rows) == [
        (date(2026, 9, 1), date(2026, 10, 1)),
        (date(2026, 10, 1), date(2026, 10, 20)),
    ]


def test_rate_limited_requests_are_retried(
    globex: Path, vultr: VultrBilling, warehouse_resource: ClickHouseResource
) -> None:
    vultr.throttle(2)

    result = collect(globex, warehouse_resource)

    assert result.success
    assert stored(warehouse_resource, "globex") == ledger(vultr, account_id("globex"), START, END)


def test_changed_pending_charges_replace_the_earlier_ones(
    tmp_path: Path, vultr: VultrBilling, warehouse_resource: ClickHouseResource
) -> None:
    # Vultr's daily amounts are cents: a threshold of cents too.
    low = {"min_amount": "0.01", "min_percent": "0.5"}
    globex = write_customers(
        tmp_path / "c.yaml", {"globex": {**entry("globex", "GLOBEX_KEY"), "restatements": low}}
    )
    first = collect(globex, warehouse_resource)
    changed = restate(bills("globex"), [account("globex")], since=date(2026, 10, 1), seed=3)
    vultr.set_lines([*changed, *bills("umbrella")])

    second = collect(globex, warehouse_resource)

    assert stored(warehouse_resource, "globex") == ledger(vultr, account_id("globex"), START, END)
    # The first collection restates nothing; the second lists what it changed.
    assert metadata(first)["changes_recorded"] == 0
    assert "No restatement above the threshold" in metadata(first)["restatements"]
    restated = metadata(second)
    assert restated["changes_recorded"] >= restated["restatements_above_threshold"] > 0
    table = restated["restatements"].splitlines()
    assert table[0].startswith("| day | account | service |")
    assert all(line.startswith("| 2026-10-") for line in table[2:] if line.startswith("|"))


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
    assert stored(warehouse_resource, "umbrella") == ledger(
        vultr, account_id("umbrella"), START, END
    )


def test_pending_still_showing_the_closed_month_is_not_counted_twice(
    globex: Path, vultr: VultrBilling, warehouse_resource: ClickHouseResource
) -> None:
    """Failure window (a): the invoice is issued, pending charges still list the month."""
    vultr.handover = Handover(pending_holdover=timedelta(days=2))
    lines = bills("globex", date(2026, 10, 3))
    at(vultr, datetime(2026, 9, 30, tzinfo=UTC), lines)
    collect(globex, warehouse_resource, START, date(2026, 10, 1))
    at(vultr, datetime(2026, 10, 1, 6, tzinfo=UTC), lines)
    assert vultr.served(account_id("globex")).pending  # still September's
    assert vultr.served(account_id("globex")).invoices[0]["date"].startswith("2026-10-01")

    result = collect(globex, warehouse_resource, START, date(2026, 10, 2))

    assert result.success
    expected = ledger(vultr, account_id("globex"), START, date(2026, 10, 2))
    assert set(billed_by_month(expected)) == {"2026-09"}
    assert stored(warehouse_resource, "globex") == expected
    assert stored_estimated_days(warehouse_resource, "globex") == set()
    assert check_evaluation(result, RECONCILIATION).passed


def test_a_month_with_neither_invoice_nor_pending_keeps_its_last_estimate(
    globex: Path, vultr: VultrBilling, warehouse_resource: ClickHouseResource
) -> None:
    """Failure window (b): pending has reset before the invoice is listed."""
    vultr.handover = Handover(invoice_lag=timedelta(days=2, hours=6))
    lines = bills("globex", date(2026, 10, 5))
    at(vultr, datetime(2026, 9, 30, tzinfo=UTC), lines)
    collect(globex, warehouse_resource, START, date(2026, 10, 1))
    estimate = ledger(vultr, account_id("globex"), START, date(2026, 10, 1))
    assert stored(warehouse_resource, "globex") == estimate
    at(vultr, datetime(2026, 10, 2, tzinfo=UTC), lines)
    assert not vultr.served(account_id("globex")).invoices[0]["date"].startswith("2026-10")

    gap = collect(globex, warehouse_resource, START, date(2026, 10, 3))

    assert gap.success
    assert metadata(gap)["window_start"] == "2026-10-01"  # September not replaced
    october = ledger(vultr, account_id("globex"), date(2026, 10, 1), date(2026, 10, 3))
    assert set(billed_by_month(october)) == {"2026-10"}
    assert stored(warehouse_resource, "globex", START, date(2026, 10, 3)) == {
        **estimate,
        **october,
    }
    at(vultr, datetime(2026, 10, 4, tzinfo=UTC), lines)  # the invoice is listed now

    closed = collect(globex, warehouse_resource, START, date(2026, 10, 5))

    assert metadata(closed)["window_start"] == "2026-09-01"
    invoiced = ledger(vultr, account_id("globex"), START, date(2026, 10, 5))
    assert stored(warehouse_resource, "globex", START, date(2026, 10, 5)) == invoiced
    assert only_months(invoiced, "2026-09") != estimate
    assert {d.month for d in stored_estimated_days(warehouse_resource, "globex")} == {10}


def test_a_30_day_total_on_the_2nd_includes_the_previous_month(
    globex: Path, vultr: VultrBilling, warehouse_resource: ClickHouseResource
) -> None:
    at(vultr, datetime(2026, 10, 2, tzinfo=UTC), bills("globex", date(2026, 10, 2)))
    collect(globex, warehouse_resource, START, date(2026, 10, 3))

    # total?days=30 taken on 2 October: 3 September .. 2 October.
    first, end = date(2026, 9, 3), date(2026, 10, 3)
    total = sum(c["BilledCost"] for c in stored(warehouse_resource, "globex", first, end).values())
    book = ledger(vultr, account_id("globex"), first, end)
    assert total == sum(cell["BilledCost"] for cell in book.values())
    september = billed_by_month(book)["2026-09"]
    invoice = vultr.served(account_id("globex")).invoices[0]["amount"]
    assert Decimal(0) < september < invoice  # 28 of September's 30 days


def test_items_starting_before_their_invoice_month_are_kept(
    globex: Path, vultr: VultrBilling, warehouse_resource: ClickHouseResource
) -> None:
    vultr.start_at_creation = True
    starts = [
        i["start_date"][:7]
        for i in vultr.served(account_id("globex")).items[10_000_000 + 2026_09 * 10]
    ]
    assert "2026-07" in starts

    result = collect(globex, warehouse_resource)

    assert result.success
    assert stored(warehouse_resource, "globex") == ledger(vultr, account_id("globex"), START, END)
    assert check_evaluation(result, RECONCILIATION).passed


def test_lines_outside_the_window_are_counted_not_stored(
    globex: Path, vultr: VultrBilling, warehouse_resource: ClickHouseResource
) -> None:
    start = date(2026, 9, 15)

    result = collect(globex, warehouse_resource, start, END)

    assert metadata(result)["lines_outside_window"] > 0
    assert stored(warehouse_resource, "globex", START, END) == ledger(
        vultr, account_id("globex"), start, END
    )
    assert check_evaluation(result, RECONCILIATION).passed


def test_an_invoice_whose_amount_differs_from_its_items_fails_reconciliation(
    globex: Path, vultr: VultrBilling, warehouse_resource: ClickHouseResource
) -> None:
    vultr.misstate_invoice(account_id("globex"), date(2026, 9, 1), Decimal("1.25"))

    result = collect(globex, warehouse_resource)

    evaluation = check_evaluation(result, RECONCILIATION)
    assert not evaluation.passed
    assert evaluation.description is not None
    assert evaluation.description.startswith(
        f"globex/vultr account {account_id('globex')} 2026-09-30: stored "
    )
    assert evaluation.description.endswith("(difference -1.25)")
    assert evaluation.metadata["differences"].value == 1
    assert result.success  # the items are stored; the check says they do not add up


def test_pending_charges_that_differ_from_the_account_total_fail_reconciliation(
    globex: Path, vultr: VultrBilling, warehouse_resource: ClickHouseResource
) -> None:
    vultr.misstate_pending_total(account_id("globex"), Decimal("0.37"))

    result = collect(globex, warehouse_resource)

    evaluation = check_evaluation(result, RECONCILIATION)
    assert not evaluation.passed
    assert evaluation.description is not None
    # The open month's last accrued day carries the month's difference.
    assert evaluation.description.startswith(
        f"globex/vultr account {account_id('globex')} 2026-10-19: stored "
    )
    assert evaluation.description.endswith("(difference -0.37)")


def test_every_line_carries_the_account_name_vultr_gives_and_no_tags(
    globex: Path, vultr: VultrBilling, warehouse_resource: ClickHouseResource
) -> None:
    result = collect(globex, warehouse_resource)

    assert result.success
    rows = (
        warehouse_resource.get_client()
        .query(
            "SELECT DISTINCT BillingAccountId, BillingAccountName, SubAccountId, SubAccountName, "
            "Tags FROM costs_current(customer_id='globex') WHERE provider = 'vultr'"
        )
        .result_rows
    )
    name = vultr.names[account_id("globex")]
    assert name == "globex vultr"  # /v2/account's name
    assert rows == [(account_id("globex"), name, account_id("globex"), name, {})]
    assert metadata(result)["api_requests"] == 4  # the name comes with the pending total
