"""aws_costs against moto's Cost Explorer (through a local AWS-protocol peer) and the warehouse."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from cost_local.sandbox.aws import cost_explorer_results, queue_cost_and_usage, reset_moto
from cost_local.sandbox.bills import generate_bills, restate
from cost_pipelines.resources.clickhouse import ClickHouseResource
from tests.pipelines.aws_helpers import (
    ENDPOINT_ENV,
    aws_account,
    aws_entry,
    queued_by_day_and_service,
    run_aws_costs,
    stored_by_day_and_service,
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
    expected = queued_by_day_and_service(results)
    assert len(expected) == 7 * 7  # every day, six services and tax
    assert stored_by_day_and_service(warehouse_resource, "pages") == expected
    metadata = materialization_metadata(result)
    assert metadata["api_requests"] == len(results) > 10  # every page of every query followed
    assert metadata["rows_written"] == sum(
        len(period["Groups"])
        for page in results
        for period in page["ResultsByTime"]
        if period["Groups"] and len(period["Groups"][0]["Keys"]) == 2
    )
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
        queued_by_day_and_service(results)
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
    assert stored == queued_by_day_and_service(results)
    assert stored != queued_by_day_and_service(cost_explorer_results(first, START, END))


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
            "SELECT toString(toDate(ChargePeriodStart)) AS day, min(x_Estimated), max(x_Estimated) "
            "FROM costs_current(customer_id={c:String}) GROUP BY day ORDER BY day",
            parameters={"c": "estimated"},
        )
        .result_rows
    )
    estimated = {day for day, lowest, highest in rows if lowest and highest}
    assert estimated == {"2026-11-07"}
    assert len(rows) == 7


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
    assert stored_by_day_and_service(warehouse_resource, good) == queued_by_day_and_service(results)
    assert stored_by_day_and_service(warehouse_resource, bad) == {}
