"""The recommendation assets over the demo's bills and the sandbox's recommendation APIs: every
provider that has an API is asked once per interval (Cost Explorer's requests counted and
priced), Vultr is said to have none, GCP is asked only where access is granted, and each of our
own rules finds the waste the demo carries. Real warehouse, real Dagster materializations, the
sandbox's servers over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pandas as pd
import pytest
import yaml
from botocore.exceptions import ClientError

from cost_local.sandbox import demo
from cost_local.sandbox.azure_recommendations import reservation_recommendations
from cost_pipelines.assets.recommendations.azure import recommendation
from cost_pipelines.customers import AzureRecommendationSettings, parse_customers
from cost_pipelines.resources.clickhouse import ClickHouseResource
from tests.support.ports import PortPicker
from tests.support.processes import WarehouseProcess, own_database
from tests.support.recommendations import RecommendationStack, recommendation_stack

TODAY = datetime.now(UTC).date()


@pytest.fixture(scope="module")
def stack(
    warehouse: WarehouseProcess, tmp_path_factory: pytest.TempPathFactory, free_port: PortPicker
) -> Iterator[RecommendationStack]:
    with (
        own_database(warehouse, "recommendations") as name,
        pytest.MonkeyPatch.context() as monkeypatch,
        recommendation_stack(
            ClickHouseResource(url=warehouse.url, database=name),
            tmp_path_factory.mktemp("recommendations"),
            free_port,
            monkeypatch,
            TODAY,
        ) as found,
    ):
        yield found


def metadata(result: Any, asset: str) -> dict[str, Any]:
    [event] = result.asset_materializations_for_node(asset)
    return {k: v.value for k, v in event.metadata.items()}


def latest(stack: RecommendationStack, asset: str) -> pd.DataFrame:
    sql = """
    SELECT * FROM cost_recommendations
    WHERE customer_id = 'demo' AND run_id = (
        SELECT argMax(run_id, computed_at) FROM analytics_runs
        WHERE customer_id = 'demo' AND asset = {asset:String})
    """
    rows = list(
        stack.warehouse.get_client().query(sql, parameters={"asset": asset}).named_results()
    )
    return pd.DataFrame(rows, columns=None if rows else ["kind", "provider"])


def test_each_provider_with_an_api_is_asked_and_vultr_is_said_to_have_none(
    stack: RecommendationStack,
) -> None:
    found = metadata(stack.results[0], "provider_recommendations")
    assert found["aws_status"] == found["azure_status"] == found["gcp_status"] == "asked"
    assert "Vultr offers no" in found["vultr_status"]
    # One Savings Plans type and two reservation services, one page each, $0.01 a request.
    assert found["cost_explorer_requests"] == 3
    assert Decimal(found["cost_explorer_cost_usd"]) == Decimal("0.03")
    assert {r.headers["x-amz-target"] for r in stack.ce.requests} == {
        "AWSInsightsIndexService.GetSavingsPlansPurchaseRecommendation",
        "AWSInsightsIndexService.GetReservationPurchaseRecommendation",
    }
    kinds = {
        provider: set(latest(stack, f"provider_recommendations.{provider}").kind)
        for provider in ("aws", "azure", "gcp")
    }
    assert kinds == {
        "aws": {"savings_plan", "reserved_instance"},
        "azure": {"reservation"},
        "gcp": {"committed_use_discount"},
    }


def test_the_providers_are_not_asked_again_within_their_interval_unless_forced(
    stack: RecommendationStack,
) -> None:
    before = len(stack.ce.requests)
    again = metadata(stack.materialize(), "provider_recommendations")
    assert again["cost_explorer_requests"] == 0 and len(stack.ce.requests) == before
    assert again["aws_status"].startswith("not asked: last asked")
    forced = metadata(stack.materialize(force=True), "provider_recommendations")
    assert forced["cost_explorer_requests"] == 3 and len(stack.ce.requests) == before + 3


def test_gcp_is_not_asked_where_the_customer_granted_no_access(
    stack: RecommendationStack, tmp_path: Path
) -> None:
    document = yaml.safe_load(stack.customers_file.read_text())
    del document["customers"]["demo"]["recommendations"]["gcp"]
    original = stack.customers_file
    stack.customers_file = tmp_path / "customers.yaml"
    stack.customers_file.write_text(yaml.safe_dump(document))
    try:
        found = metadata(stack.materialize(force=True), "provider_recommendations")
    finally:
        stack.customers_file = original
    assert "granted no Recommender access" in found["gcp_status"]


def test_each_own_rule_finds_the_waste_the_demo_carries(stack: RecommendationStack) -> None:
    own = latest(stack, "cost_recommendations")
    assert set(own.kind) == {"idle_resource", "low_commitment_utilisation", "growing_service"}
    idle = own[own.kind == "idle_resource"].set_index("resource_id")
    address = next(r for r in idle.index if r.endswith("-unused-ip"))
    # $0.24 a day for seven days, as a month of 30 days.
    assert Decimal(idle.loc[address, "monthly_saving"]) == Decimal("7.2")
    assert '"rule":"zero_usage"' in idle.loc[address, "evidence"]
    stopped = next(r for r in idle.index if r.endswith("-batch-vm"))
    assert '"rule":"no_compute"' in idle.loc[stopped, "evidence"]
    [growing] = own[own.kind == "growing_service"].itertuples()
    assert growing.scope == "Vertex AI" and growing.provider == "gcp"
    [commitment] = own[own.kind == "low_commitment_utilisation"].itertuples()
    assert commitment.resource_id == "Savings Plans for AWS Compute usage"
    metadata_ = metadata(stack.results[0], "cost_recommendations")
    assert metadata_["recommendations"] == len(own)


def test_a_first_sighting_is_kept_across_runs(stack: RecommendationStack) -> None:
    sql = """
    SELECT key, min(computed_at), max(computed_at), count() FROM cost_recommendations
    WHERE customer_id = 'demo' AND asset = 'cost_recommendations' GROUP BY key
    """
    rows = stack.warehouse.get_client().query(sql).result_rows
    assert rows and all(count >= 1 and first <= last for _, first, last, count in rows)
    assert TODAY - timedelta(days=1) <= rows[0][1].date() <= TODAY + timedelta(days=1)


def test_a_bad_threshold_in_the_customers_file_names_its_field() -> None:
    entry = {"providers": {}, "recommendations": {"min_utilisation": "2", "idle_days": 0}}
    book = parse_customers({"customers": {"acme": entry}}, "customers.yaml")
    assert "acme" in book.invalid
    problems = " ".join(book.invalid["acme"])
    assert "recommendations.min_utilisation" in problems
    assert "recommendations.idle_days" in problems


def test_a_legacy_azure_answer_counts_in_the_billing_currency_over_its_look_back(
    stack: RecommendationStack,
) -> None:
    subscription = demo.accounts()["azure"].sub_accounts[0].id
    answer = reservation_recommendations(
        f"/subscriptions/{subscription}",
        {"api-version": "2023-05-01", "$filter": "properties/lookBackPeriod eq 'Last7Days'"},
        stack.lines,
        TODAY,
    )
    legacy = [item for item in answer["value"] if item["properties"]["term"] == "P1Y"]
    assert legacy and all(item["kind"] == "legacy" for item in legacy)
    for item in legacy:
        found = recommendation(item, AzureRecommendationSettings(), "EUR")
        assert found is not None and found.currency == "EUR"
        net = item["properties"]["netSavings"]
        assert found.monthly_saving == net * 730 / (7 * 24)
        assert found.scope == f"Single {subscription}" and found.lookback == "Last7Days"


def test_one_provider_refusing_never_keeps_the_others_from_being_asked(
    stack: RecommendationStack,
) -> None:
    asked_before = last_asked(stack, "azure")
    stack.gcp.recommender_readers = set()  # the grant was withdrawn
    try:
        result = stack.materialize(force=True, check=False)
    finally:
        stack.gcp.recommender_readers = None
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    assert "gcp:" in str(failure.step_failure_data.error) and "aws:" not in str(
        failure.step_failure_data.error
    )
    assert last_asked(stack, "azure") > asked_before  # asked and published all the same


def last_asked(stack: RecommendationStack, provider: str) -> Any:
    sql = """SELECT max(computed_at) FROM analytics_runs
             WHERE customer_id = 'demo' AND asset = {asset:String}"""
    params = {"asset": f"provider_recommendations.{provider}"}
    return stack.warehouse.get_client().query(sql, parameters=params).result_rows[0][0]


def test_the_local_cost_explorer_refuses_as_aws_does(stack: RecommendationStack) -> None:
    def client(key: str, secret: str) -> Any:
        return boto3.client(
            "ce",
            region_name="us-east-1",
            endpoint_url=stack.ce.base_url,
            aws_access_key_id=key,
            aws_secret_access_key=secret,
        )

    def refusal(key: str, secret: str, **request: str) -> dict[str, str]:
        with pytest.raises(ClientError) as refused:
            client(key, secret).get_savings_plans_purchase_recommendation(**request)
        error: dict[str, str] = refused.value.response["Error"]
        return error

    request = {
        "SavingsPlansType": "COMPUTE_SP",
        "TermInYears": "ONE_YEAR",
        "PaymentOption": "NO_UPFRONT",
        "LookbackPeriodInDays": "SEVEN_DAYS",
    }
    [(key, secret)] = stack.ce.access_keys.items()
    assert refusal("AKIAUNKNOWNKEY000000", secret, **request)["Code"] == (
        "UnrecognizedClientException"
    )
    assert refusal(key, secret + "x", **request)["Code"] == "InvalidSignatureException"
    invalid = refusal(key, secret, **{**request, "PaymentOption": "WEEKLY"})
    assert invalid["Code"] == "ValidationException" and "PaymentOption" in invalid["Message"]
    answer = client(key, secret).get_savings_plans_purchase_recommendation(**request)  # type: ignore[arg-type]
    assert answer["SavingsPlansPurchaseRecommendation"]["LookbackPeriodInDays"] == "SEVEN_DAYS"
