"""aws_costs against moto's Cost Explorer (through a local AWS-protocol peer) and the warehouse."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import pytest

from cost_local.sandbox.aws import cost_explorer_results, queue_cost_and_usage, reset_moto
from cost_local.sandbox.aws_billing import (
    MONTHLY_FEES,
    RI_SERVICE,
    SP_FEE_SERVICE,
    USAGE_RECORD_TYPES,
    aws_records,
    cost_explorer_ledger,
    ledger_sums,
)
from cost_local.sandbox.bills import generate_bills, restate
from cost_local.sandbox.catalog import SubAccount
from cost_pipelines.assets.checks import CONFORMANCE, RECONCILIATION
from cost_pipelines.resources.clickhouse import ClickHouseResource
from tests.pipelines.aws_helpers import (
    ENDPOINT_ENV,
    aws_account,
    aws_entry,
    check_evaluation,
    ledger_by_day_and_service,
    queued_by_day_and_service,
    run_aws_costs,
    stored_by_day_and_service,
    stored_sums,
)
from tests.pipelines.rest_helpers import amounts as _amounts
from tests.pipelines.rest_helpers import failure as failure_message
from tests.pipelines.rest_helpers import metadata as materialization_metadata
from tests.support.aws_peer import AwsError, AwsPeer
from tests.support.customers import write_customers

pytestmark = pytest.mark.slow

START, END = date(2026, 11, 1), date(2026, 11, 8)
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


@pytest.fixture
def good_keys(monkeypatch: pytest.MonkeyPatch, aws_peer: AwsPeer) -> None:
    monkeypatch.setenv(ENDPOINT_ENV, aws_peer.url)
    monkeypatch.setenv("GOOD_KEY_ID", "AKIAGOODGOODGOOD0001")
    monkeypatch.setenv("GOOD_SECRET", SECRET)


def _bills(customer_id: str) -> list:
    return generate_bills([aws_account(customer_id)], START, END, seed=3)


def test_stored_costs_equal_the_queued_cost_explorer_amounts_over_several_pages(
    tmp_path: Path, aws_peer: AwsPeer, good_keys: None, warehouse_resource: ClickHouseResource
) -> None:
    customers = write_customers(tmp_path / "c.yaml", {"pages": aws_entry("pages", "GOOD")})
    results = cost_explorer_results(_bills("pages"), START, END, page_size=9)
    queue_cost_and_usage(aws_peer.url, results)

    result = run_aws_costs(customers, "pages", warehouse_resource, START, END)

    assert result.success
    expected = ledger_by_day_and_service(_bills("pages"), START, END)
    # every day, six services and tax, and the Savings Plan's monthly fee in its daily shares
    assert len(expected) == 7 * 7 + 7
    assert stored_by_day_and_service(warehouse_resource, "pages") == expected
    queued = queued_by_day_and_service(results)
    # what Cost Explorer answered, but for the services of the monthly fees (dated on the 1st,
    # stored in daily shares)
    fee_services = (RI_SERVICE, SP_FEE_SERVICE)
    assert {k: v for k, v in queued.items() if k[1] not in fee_services} == {
        k: v for k, v in expected.items() if k[1] not in fee_services
    }
    metadata = materialization_metadata(result)
    assert metadata["api_requests"] == len(results) > 10  # every page of every query followed
    groups = [
        group
        for page in results
        for period in page["ResultsByTime"]
        for group in period["Groups"]
        if len(group["Keys"]) == 2
    ]
    fees = [group for group in groups if group["Keys"][1] in MONTHLY_FEES]
    assert len(fees) == 2  # the RIFee and the SavingsPlanRecurringFee of 1 November
    # each monthly fee group is stored as its 7 daily shares of the window's days
    assert metadata["rows_written"] == len(groups) - len(fees) + 7 * len(fees)
    assert _amounts(metadata["totals"]) == {"USD": sum(expected.values(), Decimal(0))}
    assert (metadata["window_start"], metadata["window_end"]) == ("2026-11-01", "2026-11-08")
    assert metadata["source"] == "aws_cost_explorer"


def test_a_throttled_first_attempt_is_retried_and_the_costs_arrive(
    tmp_path: Path, aws_peer: AwsPeer, good_keys: None, warehouse_resource: ClickHouseResource
) -> None:
    customers = write_customers(tmp_path / "c.yaml", {"throttled": aws_entry("throttled", "GOOD")})
    results = cost_explorer_results(_bills("throttled"), START, END)
    queue_cost_and_usage(aws_peer.url, results)
    aws_peer.fail_ce_calls = [
        AwsError(400, "LimitExceededException", "Rate exceeded"),
        AwsError(503, "ServiceUnavailableException", "Service unavailable"),
    ]

    result = run_aws_costs(customers, "throttled", warehouse_resource, START, END)

    assert result.success
    assert aws_peer.answered_errors == ["LimitExceededException", "ServiceUnavailableException"]
    assert stored_by_day_and_service(warehouse_resource, "throttled") == (
        ledger_by_day_and_service(_bills("throttled"), START, END)
    )


def test_a_restated_window_leaves_only_the_new_numbers(
    tmp_path: Path, aws_peer: AwsPeer, good_keys: None, warehouse_resource: ClickHouseResource
) -> None:
    customers = write_customers(tmp_path / "c.yaml", {"restated": aws_entry("restated", "GOOD")})
    first = _bills("restated")
    queue_cost_and_usage(aws_peer.url, cost_explorer_results(first, START, END))
    assert run_aws_costs(customers, "restated", warehouse_resource, START, END).success

    # Cost Explorer restates the last days: moto must forget the answers it already gave.
    reset_moto(aws_peer.url)
    restated = restate(first, [aws_account("restated")], since=date(2026, 11, 5))
    results = cost_explorer_results(restated, START, END)
    queue_cost_and_usage(aws_peer.url, results)
    assert run_aws_costs(customers, "restated", warehouse_resource, START, END).success

    stored = stored_by_day_and_service(warehouse_resource, "restated")
    assert stored == ledger_by_day_and_service(restated, START, END)
    assert stored != ledger_by_day_and_service(first, START, END)


def test_estimated_days_are_stored_as_estimated(
    tmp_path: Path, aws_peer: AwsPeer, good_keys: None, warehouse_resource: ClickHouseResource
) -> None:
    customers = write_customers(tmp_path / "c.yaml", {"estimated": aws_entry("estimated", "GOOD")})
    last_day = date(2026, 11, 7)
    results = cost_explorer_results(_bills("estimated"), START, END, estimated_from=last_day)
    queue_cost_and_usage(aws_peer.url, results)

    assert run_aws_costs(customers, "estimated", warehouse_resource, START, END).success

    rows = (
        warehouse_resource.get_client()
        .query(
            "SELECT toString(toDate(ChargePeriodStart)) AS day, isNull(x_SpreadPeriodStart), "
            "min(x_Estimated), max(x_Estimated) "
            "FROM costs_current(customer_id={c:String}) GROUP BY 1, 2 ORDER BY 1, 2",
            parameters={"c": "estimated"},
        )
        .result_rows
    )
    answered = {day: (lo, hi) for day, unspread, lo, hi in rows if unspread}
    estimated = {day for day, (lowest, highest) in answered.items() if lowest and highest}
    assert estimated == {"2026-11-07"}
    assert len(answered) == 7
    # the monthly fees' daily shares keep the flag of their line: Cost Explorer's 1 November
    # (not estimated), also on the estimated 7th
    shares = {day: (lo, hi) for day, unspread, lo, hi in rows if not unspread}
    assert shares == {f"2026-11-0{n}": (False, False) for n in range(1, 8)}


@pytest.mark.parametrize(
    ("status", "code"), [(403, "UnrecognizedClientException"), (400, "ExpiredTokenException")]
)
def test_rejected_credentials_fail_that_customer_while_the_good_customers_costs_arrive(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    aws_peer: AwsPeer,
    good_keys: None,
    warehouse_resource: ClickHouseResource,
    status: int,
    code: str,
) -> None:
    good, bad = f"good-{status}", f"bad-{status}"
    customers = write_customers(
        tmp_path / "c.yaml", {good: aws_entry(good, "GOOD"), bad: aws_entry(bad, "BAD")}
    )
    monkeypatch.setenv("BAD_KEY_ID", "AKIABADBADBADBAD0002")
    monkeypatch.setenv("BAD_SECRET", SECRET)
    aws_peer.rejected_keys["AKIABADBADBADBAD0002"] = AwsError(status, code, "token rejected")
    results = cost_explorer_results(_bills(good), START, END)
    queue_cost_and_usage(aws_peer.url, results)

    failed = run_aws_costs(customers, bad, warehouse_resource, START, END)
    succeeded = run_aws_costs(customers, good, warehouse_resource, START, END)

    assert not failed.success
    message = failure_message(failed)
    assert f"AWS rejected the credentials of customer '{bad}' ({code})" in message
    assert "BAD_KEY_ID" in message
    assert SECRET not in message and "AKIABADBADBADBAD0002" not in message
    assert succeeded.success
    assert stored_by_day_and_service(warehouse_resource, good) == (
        ledger_by_day_and_service(_bills(good), START, END)
    )
    assert stored_by_day_and_service(warehouse_resource, bad) == {}


def test_stored_lines_equal_the_ledger_per_day_service_charge_category_and_cost_column(
    tmp_path: Path, aws_peer: AwsPeer, good_keys: None, warehouse_resource: ClickHouseResource
) -> None:
    customers = write_customers(tmp_path / "c.yaml", {"ledger": aws_entry("ledger", "GOOD")})
    bills = _bills("ledger")
    queue_cost_and_usage(aws_peer.url, cost_explorer_results(bills, START, END, page_size=40))

    result = run_aws_costs(customers, "ledger", warehouse_resource, START, END)

    assert result.success
    ledger = ledger_sums(cost_explorer_ledger(aws_records(bills), START, END))
    assert stored_sums(warehouse_resource, "ledger") == ledger
    categories = {category for _, _, category, _ in ledger}
    assert categories == {"Usage", "Purchase", "Credit", "Tax", "Adjustment"}
    # Cost Explorer has no list or contracted price: never stored as a number.
    assert {v for k, v in ledger.items() if k[3] in ("ListCost", "ContractedCost")} == {None}
    charge_types = (
        warehouse_resource.get_client()
        .query(
            "SELECT ChargeCategory, groupUniqArray(x_ChargeType) "
            "FROM costs_current(customer_id={c:String}) GROUP BY 1",
            parameters={"c": "ledger"},
        )
        .result_rows
    )
    assert {category: sorted(types) for category, types in charge_types} == {
        "Usage": ["Usage+DiscountedUsage+SavingsPlanCoveredUsage+SavingsPlanNegation"],
        "Purchase": ["RIFee", "SavingsPlanRecurringFee", "Upfront"],
        "Credit": ["Credit"],
        "Tax": ["Tax"],
        "Adjustment": ["Refund"],
    }
    assert check_evaluation(result, CONFORMANCE).passed
    reconciled = check_evaluation(result, RECONCILIATION)
    assert reconciled.passed, reconciled.description
    assert reconciled.metadata["days_compared"].value == 7


def test_an_ungrouped_total_a_cent_off_fails_reconciliation_naming_account_day_and_difference(
    tmp_path: Path, aws_peer: AwsPeer, good_keys: None, warehouse_resource: ClickHouseResource
) -> None:
    customers = write_customers(tmp_path / "c.yaml", {"cent": aws_entry("cent", "GOOD")})
    results = cost_explorer_results(_bills("cent"), START, END, reference_shift=Decimal("0.01"))
    queue_cost_and_usage(aws_peer.url, results)

    result = run_aws_costs(customers, "cent", warehouse_resource, START, END)

    assert result.success  # the lines are stored; the check says they disagree
    reconciled = check_evaluation(result, RECONCILIATION)
    assert not reconciled.passed
    account = aws_account("cent").billing_account_id
    assert reconciled.description.startswith(f"cent/aws account {account} 2026-11-01: stored ")
    assert reconciled.description.endswith("(difference -0.01)")
    assert reconciled.metadata["differences"].value == 1


def test_a_usage_day_cost_explorer_lost_fails_reconciliation_for_that_day(
    tmp_path: Path, aws_peer: AwsPeer, good_keys: None, warehouse_resource: ClickHouseResource
) -> None:
    customers = write_customers(tmp_path / "c.yaml", {"lost": aws_entry("lost", "GOOD")})
    bills = _bills("lost")
    lost = date(2026, 11, 3)
    queue_cost_and_usage(
        aws_peer.url, cost_explorer_results(bills, START, END, lose_usage_day=lost)
    )

    result = run_aws_costs(customers, "lost", warehouse_resource, START, END)

    reconciled = check_evaluation(result, RECONCILIATION)
    assert not reconciled.passed
    assert reconciled.metadata["differences"].value == 1
    usage = sum(
        (
            x.billed_cost
            for x in cost_explorer_ledger(aws_records(bills), lost, lost.replace(day=4))
            if x.charge_category == "Usage"
        ),
        Decimal(0),
    )
    account = aws_account("lost").billing_account_id
    assert f"lost/aws account {account} 2026-11-03" in reconciled.description
    assert reconciled.description.endswith(f"(difference {(-usage).normalize():f})")


@pytest.mark.parametrize("linked_accounts", [1, 3, 6])
def test_requests_per_run_are_one_plus_two_per_linked_account(
    tmp_path: Path,
    aws_peer: AwsPeer,
    good_keys: None,
    warehouse_resource: ClickHouseResource,
    linked_accounts: int,
) -> None:
    customer = f"req{linked_accounts}"
    account = aws_account(customer)
    subs = tuple(SubAccount(f"2{n}0000000042", f"{customer}-{n}") for n in range(linked_accounts))
    bills = generate_bills([replace(account, sub_accounts=subs)], START, END, seed=3)
    customers = write_customers(tmp_path / "c.yaml", {customer: aws_entry(customer, "GOOD")})
    queue_cost_and_usage(aws_peer.url, cost_explorer_results(bills, START, END))

    result = run_aws_costs(customers, customer, warehouse_resource, START, END)

    assert result.success
    requests = materialization_metadata(result)["api_requests"]
    assert requests == aws_peer.ce_calls == 1 + 2 * linked_accounts
    assert check_evaluation(result, RECONCILIATION).passed


def _ri_fee_lines(
    warehouse: ClickHouseResource, customer_id: str
) -> list[tuple[date, date, date, Decimal, Decimal]]:
    """(day, x_SpreadPeriodStart, x_SpreadPeriodEnd, BilledCost, EffectiveCost) of the stored
    RIFee lines, in day order."""
    return [
        tuple(row)
        for row in warehouse.get_client()
        .query(
            "SELECT toDate(ChargePeriodStart), toDate(x_SpreadPeriodStart), "
            "toDate(x_SpreadPeriodEnd), BilledCost, EffectiveCost "
            "FROM costs_current(customer_id={c:String}) WHERE x_ChargeType = 'RIFee' ORDER BY 1",
            parameters={"c": customer_id},
        )
        .result_rows
    ]


def _share(amount: Decimal, days: int) -> Decimal:
    return (amount / days).quantize(Decimal("1e-12"), rounding=ROUND_HALF_EVEN)


@pytest.mark.parametrize("bought", [date(2026, 10, 1), date(2026, 10, 15)])
def test_a_monthly_ri_fee_is_on_every_day_of_its_month_in_marked_shares_that_sum_to_it(
    tmp_path: Path,
    aws_peer: AwsPeer,
    good_keys: None,
    warehouse_resource: ClickHouseResource,
    bought: date,
) -> None:
    customer = f"fees{bought.day}"
    customers = write_customers(tmp_path / "c.yaml", {customer: aws_entry(customer, "GOOD")})
    # The reserved instance is bought on the bills' first day: its first RIFee (dated that day
    # by Cost Explorer) pays for the rest of October, the next one (dated 1 November) for November.
    bills = generate_bills([aws_account(customer)], bought, END, seed=3)
    queue_cost_and_usage(aws_peer.url, cost_explorer_results(bills, bought, END))

    result = run_aws_costs(customers, customer, warehouse_resource, bought, END)

    assert result.success
    fees = {r.day: r for r in aws_records(bills) if r.record_type == "RIFee"}
    assert sorted(fees) == [bought, START]
    lines = _ri_fee_lines(warehouse_resource, customer)
    october = [line for line in lines if line[0] < START]
    october_days = (START - bought).days
    assert [line[0] for line in october] == [date(2026, 10, day) for day in range(bought.day, 32)]
    assert {line[1:3] for line in october} == {(bought, START)}
    # a closed period holds the fee exactly, in equal shares, the last day with the remainder
    fee = fees[bought]
    assert sum(line[3] for line in october) == fee.unblended
    assert sum(line[4] for line in october) == fee.net_amortized
    assert {line[3] for line in october[:-1]} == {_share(fee.unblended, october_days)}
    # the open month: the shares of the days up to today (the window end) only
    november = [line for line in lines if line[0] >= START]
    fee = fees[START]
    assert [line[0] for line in november] == [date(2026, 11, day) for day in range(1, 8)]
    assert {line[1:3] for line in november} == {(START, date(2026, 12, 1))}
    assert [line[3] for line in november] == [_share(fee.unblended, 30)] * 7
    assert sum(line[3] for line in november) < fee.unblended
    # everything else equals the ledger, and the reference moved the same amounts
    ledger = ledger_sums(cost_explorer_ledger(aws_records(bills), bought, END))
    assert stored_sums(warehouse_resource, customer) == ledger
    reconciled = check_evaluation(result, RECONCILIATION)
    assert reconciled.passed, reconciled.description
    assert reconciled.metadata["days_compared"].value == (END - bought).days

    # A window starting after the 1st still holds the shares of the fee dated on the 1st.
    reset_moto(aws_peer.url)
    since = date(2026, 11, 4)
    queue_cost_and_usage(aws_peer.url, cost_explorer_results(bills, since, END))
    again = run_aws_costs(customers, customer, warehouse_resource, since, END)
    assert again.success
    assert _ri_fee_lines(warehouse_resource, customer) == lines
    assert stored_sums(warehouse_resource, customer) == ledger
    reconciled = check_evaluation(again, RECONCILIATION)
    assert reconciled.passed, reconciled.description
    assert reconciled.metadata["days_compared"].value == 4


def test_a_lost_page_of_fees_still_fails_reconciliation_on_the_day_cost_explorer_dated_them(
    tmp_path: Path, aws_peer: AwsPeer, good_keys: None, warehouse_resource: ClickHouseResource
) -> None:
    customers = write_customers(tmp_path / "c.yaml", {"feelost": aws_entry("feelost", "GOOD")})
    bills = _bills("feelost")
    queue_cost_and_usage(
        aws_peer.url, cost_explorer_results(bills, START, END, lose_charges_day=START)
    )

    result = run_aws_costs(customers, "feelost", warehouse_resource, START, END)

    assert result.success
    reconciled = check_evaluation(result, RECONCILIATION)
    assert not reconciled.passed
    # The monthly fees of 1 November never arrived, so none of their shares are stored and
    # none are moved in the reference: only that day differs, by all it lost.
    assert reconciled.metadata["differences"].value == 1
    lost = sum(
        (
            r.unblended
            for r in aws_records(bills)
            if r.day == START and r.record_type not in USAGE_RECORD_TYPES
        ),
        Decimal(0),
    )
    assert any(r.record_type in MONTHLY_FEES and r.day == START for r in aws_records(bills))
    account = aws_account("feelost").billing_account_id
    assert f"feelost/aws account {account} 2026-11-01" in reconciled.description
    assert reconciled.description.endswith(f"(difference {(-lost).normalize():f})")


@pytest.mark.parametrize("payer_has_costs", [True, False])
def test_lines_carry_the_linked_account_names_and_the_payers_when_cost_explorer_names_it(
    tmp_path: Path,
    aws_peer: AwsPeer,
    good_keys: None,
    warehouse_resource: ClickHouseResource,
    payer_has_costs: bool,
) -> None:
    customer = "named" if payer_has_costs else "unnamed"
    account = aws_account(customer)
    payer = SubAccount(account.billing_account_id, f"{customer} management")
    subs = (payer, *account.sub_accounts[:1]) if payer_has_costs else account.sub_accounts[:1]
    bills = generate_bills([replace(account, sub_accounts=subs)], START, END, seed=3)
    customers = write_customers(tmp_path / "c.yaml", {customer: aws_entry(customer, "GOOD")})
    queue_cost_and_usage(aws_peer.url, cost_explorer_results(bills, START, END))

    assert run_aws_costs(customers, customer, warehouse_resource, START, END).success

    rows = (
        warehouse_resource.get_client()
        .query(
            "SELECT DISTINCT BillingAccountName, SubAccountId, SubAccountName, Tags "
            "FROM costs_current(customer_id={c:String})",
            parameters={"c": customer},
        )
        .result_rows
    )
    payer_name = payer.name if payer_has_costs else ""
    assert sorted(rows) == sorted((payer_name, s.id, s.name, {}) for s in subs)
