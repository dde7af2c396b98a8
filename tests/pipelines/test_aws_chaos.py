"""aws_costs when Cost Explorer misbehaves for one customer's access key (a fault-injecting proxy
in front of the AWS peer and moto's server): bursts of Cost Explorer's own throttling errors
(LimitExceededException, ThrottlingException) and passing 5xx are retried; a lasting 5xx, an
answer slower than the client's timeout or a truncated body fail the run saying what happened;
an unknown extra field is tolerated; a missing required field fails clearly. A failed run leaves
the window's previous data as it was, and the other customer (its own AWS account) succeeds."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from cost_local.sandbox.aws import cost_explorer_results, queue_cost_and_usage
from cost_local.sandbox.bills import GeneratedLine, generate_bills
from cost_pipelines.assets.aws import AWS
from cost_pipelines.resources.aws import AwsResource
from cost_pipelines.resources.clickhouse import ClickHouseResource
from tests.pipelines.aws_helpers import (
    ENDPOINT_ENV,
    aws_account,
    aws_entry,
    ledger_by_day_and_service,
    stored_by_day_and_service,
)
from tests.pipelines.rest_helpers import failure, run_costs
from tests.pipelines.test_vultr_chaos import Case
from tests.support.aws_peer import AwsPeer
from tests.support.chaos import Chaos, Fault, chaos_proxy
from tests.support.customers import write_customers

pytestmark = pytest.mark.slow
START, END = date(2026, 11, 1), date(2026, 11, 8)
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
KEYS = {"acme": "AKIAACMEACMEACME0001", "globex": "AKIAGLOBEXGLOBEX0002"}
ACCOUNTS = {"acme": "111111111111", "globex": "222222222222"}
RESOURCE = AwsResource(
    retry_attempts=3, retry_base_delay_s=0.01, retry_max_delay_s=2.0, read_timeout_s=1.0
)


def aws_error(status: int, code: str, message: str, *, times: int | None = None) -> Fault:
    """An error as AWS's JSON protocol answers it: the code in `__type` (with the service's
    namespace, which clients strip), the message, a request id."""
    body = json.dumps({"__type": f"com.amazon.coral.service#{code}", "message": message})
    headers = {"Content-Type": "application/x-amz-json-1.1", "x-amzn-RequestId": "chaos-1"}
    return Fault("status", status, headers, body=body.encode(), times=times)


CASES = {
    "limit-exceeded-burst": Case(
        [aws_error(400, "LimitExceededException", "Rate exceeded", times=2)], None
    ),
    "throttling-burst": Case(
        [aws_error(400, "ThrottlingException", "Rate exceeded", times=2)], None
    ),
    "passing-5xx": Case(
        [
            aws_error(503, "ServiceUnavailableException", "Service unavailable", times=1),
            Fault("status", 502, times=1),
        ],
        None,
    ),
    "lasting-5xx": Case([aws_error(500, "InternalServerException", "Internal")], "(HTTP 500)"),
    "lasting-throttling": Case(
        [aws_error(400, "LimitExceededException", "Rate exceeded")],
        "gave up after 3 attempts (LimitExceededException)",
    ),
    "slower-than-the-timeout": Case([Fault("slow", seconds=2.5)], "ReadTimeoutError"),
    "truncated-body": Case([Fault("truncate")], "gave up after 3 attempts"),
    "unknown-extra-field": Case([Fault("add_field", name="x_new_cost_explorer_field")], None),
    "missing-results": Case(
        [Fault("drop_field", name="ResultsByTime")],
        "answered without the required field 'ResultsByTime'",
    ),
    "missing-groups": Case(
        [Fault("drop_field", name="Groups")], "answered without the required field 'Groups'"
    ),
    "missing-amount": Case(
        [Fault("drop_field", name="Amount")], "answered without the required field 'Amount'"
    ),
}


def bills(customer_id: str) -> list[GeneratedLine]:
    return generate_bills([aws_account(customer_id)], START, END, seed=3)


@pytest.fixture
def chaos(monkeypatch: pytest.MonkeyPatch, aws_peer: AwsPeer) -> Iterator[Chaos]:
    """acme's requests go through the faults; each customer's keys are its own AWS account."""
    aws_peer.accounts = {KEYS[c]: ACCOUNTS[c] for c in KEYS}
    for customer_id in KEYS:
        results = cost_explorer_results(bills(customer_id), START, END)
        queue_cost_and_usage(aws_peer.url, results, account_id=ACCOUNTS[customer_id])
        monkeypatch.setenv(f"{customer_id.upper()}_KEY_ID", KEYS[customer_id])
        monkeypatch.setenv(f"{customer_id.upper()}_SECRET", SECRET)
    with chaos_proxy(aws_peer.url, victim=f"Credential={KEYS['acme']}/") as proxy:
        monkeypatch.setenv(ENDPOINT_ENV, proxy.url)
        yield proxy


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_a_misbehaving_cost_explorer_fails_or_is_survived_and_loses_nothing(
    tmp_path: Path, chaos: Chaos, warehouse_resource: ClickHouseResource, case: str
) -> None:
    customers = write_customers(
        tmp_path / "c.yaml", {c: aws_entry(c, c.upper()) for c in ("acme", "globex")}
    )
    both = ["acme", "globex"]
    first = run_costs(AWS, RESOURCE, customers, both, warehouse_resource, START, END)
    assert all(result.success for result in first.values())
    before = stored_by_day_and_service(warehouse_resource, "acme")
    assert before == ledger_by_day_and_service(bills("acme"), START, END)

    chaos.faults = CASES[case].faults
    results = run_costs(AWS, RESOURCE, customers, both, warehouse_resource, START, END)

    assert chaos.applied, "the fault was never injected"
    expected = CASES[case].fails_with
    if expected is None:
        assert results["acme"].success, failure(results["acme"])
    else:
        message = failure(results["acme"])
        assert expected in message, message
        assert SECRET not in message and KEYS["acme"] not in message
    assert stored_by_day_and_service(warehouse_resource, "acme") == before  # intact either way
    assert results["globex"].success, failure(results["globex"])
    assert stored_by_day_and_service(warehouse_resource, "globex") == ledger_by_day_and_service(
        bills("globex"), START, END
    )
