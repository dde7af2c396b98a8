"""The demo customer with the sandbox's recommendation APIs running (Cost Explorer's purchase
recommendations, Azure's reservation recommendations, GCP's Recommender), its bills stored as
the collectors store them, and both recommendation assets materialized. Shared by the pipeline
and API tests, which recompute every expected saving from the bills with pandas."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from dagster import ExecuteInProcessResult, StaticPartitionsDefinition, materialize

from cost_local.sandbox import demo
from cost_local.sandbox.aws_billing import aws_records, cost_explorer_ledger
from cost_local.sandbox.aws_ce import CostExplorerRecommendations
from cost_local.sandbox.azure import AzureCostManagement
from cost_local.sandbox.bills import GeneratedLine, generate_bills
from cost_local.sandbox.gcp import BigQueryBilling
from cost_local.sandbox.main import SEED, SPIKE_DAYS_AGO
from cost_pipelines.assets.recommendations import build_recommendation_assets
from cost_pipelines.resources.aws import AwsResource
from cost_pipelines.resources.azure import AzureResource
from cost_pipelines.resources.clickhouse import ClickHouseResource
from cost_pipelines.resources.customers import CustomersResource
from cost_pipelines.resources.gcp import GcpResource
from cost_pipelines.warehouse.writer import CostWindow, replace_window
from tests.support.bills import focus_rows
from tests.support.ports import PortPicker

HISTORY_DAYS = 100
COMMITMENT_FEES = ("RIFee", "SavingsPlanRecurringFee")


def demo_bills(today: date) -> list[GeneratedLine]:
    """The sandbox demo's bills (its seed, spike and waste), a shorter history."""
    return generate_bills(
        list(demo.accounts().values()),
        today - timedelta(days=HISTORY_DAYS),
        today + timedelta(days=1),
        seed=SEED,
        spike_on=today - timedelta(days=SPIKE_DAYS_AGO),
        waste=True,
    )


def commitment_fees(lines: Sequence[GeneratedLine], today: date) -> pd.DataFrame:
    """The daily shares of the demo's AWS commitment fees as Cost Explorer reports them (the
    sandbox's AWS records: BilledCost the fee, EffectiveCost its unused part)."""
    start = today - timedelta(days=HISTORY_DAYS)
    ledger = cost_explorer_ledger(aws_records(lines), start, today + timedelta(days=1))
    fees = [x for x in ledger if x.record_type in COMMITMENT_FEES]
    return pd.DataFrame(
        {
            "day": [x.day for x in fees],
            "sub": [x.sub_account_id for x in fees],
            "service": [x.service for x in fees],
            "charge_type": [x.record_type for x in fees],
            "fee": [x.billed_cost for x in fees],
            "unused": [x.effective_cost for x in fees],
        }
    )


def store(client: Any, lines: Sequence[GeneratedLine], fees: pd.DataFrame, today: date) -> None:
    """One window per billing account with PricingQuantity and the AWS fee lines, as the
    collectors store them."""
    start, end = today - timedelta(days=HISTORY_DAYS), today + timedelta(days=1)
    aws_account = demo.accounts()["aws"].billing_account_id
    for account in sorted({x.billing_account_id for x in lines}):
        own = [x for x in lines if x.billing_account_id == account]
        frame = focus_rows(own)
        frame["PricingQuantity"] = [x.pricing_quantity for x in own]
        frame["PricingUnit"] = [x.pricing_unit for x in own]
        frame["x_ChargeType"] = ""
        if account == aws_account and not fees.empty:
            extra = {
                "ChargePeriodStart": [datetime.combine(d, time(), UTC) for d in fees.day],
                "BilledCost": list(fees.fee),
                "EffectiveCost": list(fees.unused),
                "ServiceName": list(fees.service),
                "SubAccountId": list(fees["sub"]),
                "x_ChargeType": list(fees.charge_type),
            }
            fixed = {
                "BillingCurrency": "USD",
                "ServiceCategory": "Compute",
                "ChargeCategory": "Purchase",
                "ListCost": None,
                "ContractedCost": None,
                "PricingQuantity": None,
                "PricingUnit": "",
                "ResourceId": "",
                "RegionId": "",
                "SkuId": "",
            }
            columns = {
                name: list(frame[name]) + extra.get(name, [fixed.get(name)] * len(fees))
                for name in frame.columns
            }
            frame = pd.DataFrame(columns)
        window = CostWindow("demo", own[0].provider, account, start, end)
        replace_window(client, window, frame, source="generated", run_id="test")


@dataclass
class RecommendationStack:
    """The demo's data, the simulators' URLs and the materializations made."""

    today: date
    lines: list[GeneratedLine]
    fees: pd.DataFrame
    warehouse: ClickHouseResource
    customers_file: Path
    ce: CostExplorerRecommendations
    gcp: BigQueryBilling
    results: list[ExecuteInProcessResult]

    def materialize(self, force: bool = False, check: bool = True) -> ExecuteInProcessResult:
        """Both recommendation assets for `demo`, as the automation runs them."""
        result = materialize(
            build_recommendation_assets(StaticPartitionsDefinition(["demo"])),
            partition_key="demo",
            resources={
                "warehouse": self.warehouse,
                "customers": CustomersResource(path=str(self.customers_file)),
                "aws": AwsResource(retry_attempts=1),
                "azure": AzureResource(retry_attempts=1),
                "gcp": GcpResource(retry_attempts=1),
            },
            run_config={
                "ops": {
                    "provider_recommendations": {
                        "config": {"today": self.today.isoformat(), "force": force}
                    },
                    "cost_recommendations": {"config": {"today": self.today.isoformat()}},
                }
            },
            raise_on_error=check,
        )
        self.results.append(result)
        return result


@contextmanager
def recommendation_stack(
    warehouse: ClickHouseResource,
    tmp: Path,
    free_port: PortPicker,
    monkeypatch: pytest.MonkeyPatch,
    today: date,
) -> Iterator[RecommendationStack]:
    """The simulators serving the demo's bills, its environment and customers file, its bills
    stored, and one materialization of both assets."""
    lines = demo_bills(today)
    fees = commitment_fees(lines, today)
    gcp_port = free_port()
    secrets = demo.new_secrets(f"http://127.0.0.1:{gcp_port}/token")
    with ExitStack() as stack:
        ce = stack.enter_context(
            CostExplorerRecommendations(
                {secrets.aws_access_key_id: secrets.aws_secret_access_key}, lines, today
            )
        )
        azure = AzureCostManagement([secrets.azure_app])
        azure.set_lines(lines, today)
        stack.enter_context(azure)
        gcp = BigQueryBilling([secrets.gcp_key], [demo.gcp_export()], lines, port=gcp_port)
        stack.enter_context(gcp)
        key_file = tmp / "gcp-key.json"
        key_file.write_text(json.dumps(secrets.gcp_key), encoding="utf-8")
        urls = {
            "aws": "http://127.0.0.1:9",  # the cost collection is not run here
            "aws_ce": ce.base_url,
            "azure": azure.base_url,
            "gcp": gcp.base_url,
            "vultr": "http://127.0.0.1:9",
        }
        for name, value in demo.environment(urls, secrets, key_file).items():
            monkeypatch.setenv(name, value)
        customers_file = tmp / "customers.yaml"
        demo.write_customers_file(customers_file)
        store(warehouse.get_client(), lines, fees, today)
        found = RecommendationStack(today, lines, fees, warehouse, customers_file, ce, gcp, [])
        found.materialize()
        yield found
