"""Shared steps of the AWS collection tests: customers entries, one materialization of
`aws_costs`, and reading back what readers see."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from dagster import ExecuteInProcessResult, StaticPartitionsDefinition, materialize

from cost_local.sandbox.aws_billing import aws_records, cost_explorer_ledger
from cost_local.sandbox.bills import GeneratedLine
from cost_local.sandbox.catalog import Account, demo_accounts
from cost_pipelines.assets.aws import AWS
from cost_pipelines.assets.collection import build_cost_asset
from cost_pipelines.resources.aws import AwsResource
from cost_pipelines.resources.clickhouse import ClickHouseResource
from cost_pipelines.resources.customers import CustomersResource

ENDPOINT_ENV = "TEST_AWS_ENDPOINT"


def aws_account(customer_id: str) -> Account:
    return next(a for a in demo_accounts(customer_id) if a.provider == "aws")


def aws_entry(customer_id: str, key_prefix: str, **aws: Any) -> dict[str, Any]:
    """A customers-file entry whose AWS keys come from <key_prefix>_KEY_ID / _SECRET."""
    return {
        "name": customer_id.title(),
        "providers": {
            "aws": {
                "billing_account_id": aws_account(customer_id).billing_account_id,
                "credentials": {
                    "access_key_id_env": f"{key_prefix}_KEY_ID",
                    "secret_access_key_env": f"{key_prefix}_SECRET",
                },
                "endpoint_url_env": ENDPOINT_ENV,
                **aws,
            }
        },
    }


def run_aws_costs(
    customers_file: Path,
    customer_id: str,
    warehouse: ClickHouseResource,
    start: date,
    end: date,
) -> ExecuteInProcessResult:
    """Materialize aws_costs for one customer over [start, end), as a run would."""
    asset = build_cost_asset(AWS, StaticPartitionsDefinition([customer_id]))
    return materialize(
        [asset],
        partition_key=customer_id,
        resources={
            "warehouse": warehouse,
            "customers": CustomersResource(path=str(customers_file)),
            "aws": AwsResource(retry_base_delay_s=0.01),
        },
        run_config={
            "ops": {"aws_costs": {"config": {"start": start.isoformat(), "end": end.isoformat()}}}
        },
        raise_on_error=False,
    )


def stored_by_day_and_service(
    warehouse: ClickHouseResource, customer_id: str
) -> dict[tuple[str, str], Decimal]:
    rows = (
        warehouse.get_client()
        .query(
            "SELECT toString(toDate(ChargePeriodStart)), ServiceName, sum(BilledCost) "
            "FROM costs_current(customer_id={customer_id:String}) "
            "WHERE provider = 'aws' GROUP BY 1, 2",
            parameters={"customer_id": customer_id},
        )
        .result_rows
    )
    return {(day, service): Decimal(total) for day, service, total in rows}


def queued_by_day_and_service(results: list[dict[str, Any]]) -> dict[tuple[str, str], Decimal]:
    """What the queued Cost Explorer answers say, summed per day and service (detail queries)."""
    totals: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for page in results:
        for period in page["ResultsByTime"]:
            for group in period["Groups"]:
                if len(group["Keys"]) == 2:
                    amount = Decimal(group["Metrics"]["UnblendedCost"]["Amount"])
                    totals[(period["TimePeriod"]["Start"], group["Keys"][0])] += amount
    return dict(totals)


def ledger_by_day_and_service(
    lines: list[GeneratedLine], start: date, end: date
) -> dict[tuple[str, str], Decimal]:
    """What the sandbox's ledger says each day holds per service (BilledCost): the detail
    queries' amounts with every monthly fee in its daily shares."""
    totals: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for line in cost_explorer_ledger(aws_records(lines), start, end):
        totals[(line.day.isoformat(), line.service)] += line.billed_cost
    return dict(totals)


def stored_sums(
    warehouse: ClickHouseResource, customer_id: str
) -> dict[tuple[str, str, str, str], Decimal | None]:
    """(day, service, charge category, cost column) -> stored sum, None where all are NULL."""
    rows = (
        warehouse.get_client()
        .query(
            "SELECT toString(toDate(ChargePeriodStart)), ServiceName, ChargeCategory, "
            "sum(BilledCost), sum(EffectiveCost), sum(ListCost), sum(ContractedCost) "
            "FROM costs_current(customer_id={customer_id:String}) "
            "WHERE provider = 'aws' GROUP BY 1, 2, 3",
            parameters={"customer_id": customer_id},
        )
        .result_rows
    )
    columns = ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost")
    return {
        (day, service, category, column): None if total is None else Decimal(total)
        for day, service, category, *totals in rows
        for column, total in zip(columns, totals, strict=True)
    }


def check_evaluation(result: ExecuteInProcessResult, name: str) -> Any:
    """The evaluation of one asset check in a materialization."""
    [evaluation] = [e for e in result.get_asset_check_evaluations() if e.check_name == name]
    return evaluation
