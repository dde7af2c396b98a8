"""Shared steps of the Azure, GCP and Vultr collection tests: one materialization of a provider's
cost asset against its local simulator, and what readers then see, per day and service."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from dagster import (
    AssetCheckEvaluation,
    ExecuteInProcessResult,
    StaticPartitionsDefinition,
    materialize,
)

from cost_local.sandbox.bills import GeneratedLine
from cost_pipelines.assets.collection import ProviderSpec, build_cost_asset
from cost_pipelines.resources.clickhouse import ClickHouseResource
from cost_pipelines.resources.customers import CustomersResource


def run_costs(
    spec: ProviderSpec,
    client_resource: Any,
    customers_file: Path,
    customer_ids: list[str],
    warehouse: ClickHouseResource,
    start: date,
    end: date,
) -> dict[str, ExecuteInProcessResult]:
    """Materialize `<provider>_costs` for each customer over [start, end), as runs would."""
    asset = build_cost_asset(spec, StaticPartitionsDefinition(customer_ids))
    window = {"start": start.isoformat(), "end": end.isoformat()}
    return {
        customer_id: materialize(
            [asset],
            partition_key=customer_id,
            resources={
                "warehouse": warehouse,
                "customers": CustomersResource(path=str(customers_file)),
                spec.provider: client_resource,
            },
            run_config={"ops": {f"{spec.provider}_costs": {"config": window}}},
            raise_on_error=False,
        )
        for customer_id in customer_ids
    }


def run_scheduled(
    spec: ProviderSpec,
    client_resource: Any,
    customers_file: Path,
    customer_id: str,
    warehouse: ClickHouseResource,
) -> ExecuteInProcessResult:
    """Materialize `<provider>_costs` for one customer without run config, as the schedule does
    (the provider's trailing window of today)."""
    asset = build_cost_asset(spec, StaticPartitionsDefinition([customer_id]))
    return materialize(
        [asset],
        partition_key=customer_id,
        resources={
            "warehouse": warehouse,
            "customers": CustomersResource(path=str(customers_file)),
            spec.provider: client_resource,
        },
        raise_on_error=False,
    )


def check_results(result: ExecuteInProcessResult) -> dict[str, Any]:
    """The asset check evaluations of a run, by check name."""
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def metadata(result: ExecuteInProcessResult) -> dict[str, Any]:
    [event] = result.get_asset_materialization_events()
    return {k: v.value for k, v in event.materialization.metadata.items()}


def amounts(totals: dict[str, str]) -> dict[str, Decimal]:
    """A run's per-currency totals metadata as exact amounts."""
    return {currency: Decimal(amount) for currency, amount in totals.items()}


def failure(result: ExecuteInProcessResult) -> str:
    [event] = [e for e in result.all_events if e.is_step_failure]
    error = event.step_failure_data.error
    assert error is not None
    return error.to_string()


def stored_by_day_and_service(
    warehouse: ClickHouseResource, customer_id: str, provider: str
) -> dict[tuple[str, str], Decimal]:
    rows = (
        warehouse.get_client()
        .query(
            "SELECT toString(toDate(ChargePeriodStart)), ServiceName, sum(BilledCost) "
            "FROM costs_current(customer_id={customer_id:String}) "
            "WHERE provider = {provider:String} GROUP BY 1, 2",
            parameters={"customer_id": customer_id, "provider": provider},
        )
        .result_rows
    )
    return {(day, service): Decimal(total) for day, service, total in rows if total}


def billed_by_day_and_service(
    lines: Iterable[GeneratedLine], start: date, end: date
) -> dict[tuple[str, str], Decimal]:
    totals: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for line in lines:
        if start <= line.charge_date < end:
            totals[(line.charge_date.isoformat(), line.service_name)] += line.billed_cost
    return {k: v for k, v in totals.items() if v}


def check_evaluation(result: ExecuteInProcessResult, check_name: str) -> AssetCheckEvaluation:
    """The one evaluation of the named asset check in a materialization."""
    [evaluation] = [e for e in result.get_asset_check_evaluations() if e.check_name == check_name]
    return evaluation
