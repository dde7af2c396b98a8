"""The code location loads, and every place that names the providers names the same ones."""

from __future__ import annotations

import importlib
from datetime import UTC, date, datetime
from pathlib import Path
from types import ModuleType
from typing import get_args

import pytest
from dagster import (
    AssetKey,
    AssetMaterialization,
    DagsterInstance,
    DefaultSensorStatus,
    EvaluateAutomationConditionsResult,
    build_schedule_context,
    evaluate_automation_conditions,
)

import cost_pipelines.definitions
from cost_api.main import create_app
from cost_pipelines.assets import PROVIDER_SPECS
from cost_pipelines.assets.analytics import AUTOMATION_SENSOR
from cost_pipelines.assets.exchange_rates import FIRST_LOAD_SENSOR
from cost_pipelines.assets.exchange_rates import JOB_NAME as RATES_JOB
from cost_pipelines.assets.exchange_rates import SCHEDULE_NAME as RATES_SCHEDULE
from cost_pipelines.customers import _Providers, load_customers
from cost_pipelines.partitions import PARTITIONS_NAME
from cost_pipelines.providers import PROVIDERS, ProviderKey
from cost_pipelines.resources.customers import CustomersResource
from cost_pipelines.schedules import JOB_NAME, SCHEDULE_NAME
from cost_pipelines.warehouse.writer import CostWindow, InvalidCostRows

ANALYSES = ("cost_anomalies", "cost_forecast", "budget_status")
RECOMMENDATIONS = ("provider_recommendations", "cost_recommendations")
EXAMPLE_CUSTOMERS = Path(__file__).resolve().parents[2] / "config" / "customers.example.yaml"


@pytest.fixture
def definitions(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The code location as `dagster dev` loads it, over the example customers file."""
    monkeypatch.setenv("CUSTOMERS_FILE", str(EXAMPLE_CUSTOMERS))
    return importlib.reload(cost_pipelines.definitions)


def test_the_code_location_loads_with_its_job_schedule_and_one_asset_per_provider(
    definitions: ModuleType,
) -> None:
    defs = definitions.defs
    assert defs.resolve_job_def(JOB_NAME)
    assert defs.resolve_schedule_def(SCHEDULE_NAME).job_name == JOB_NAME
    keys = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    assert keys == {f"{provider}_costs" for provider in PROVIDERS} | set(ANALYSES) | set(
        RECOMMENDATIONS
    ) | {"exchange_rates"}


def test_the_analyses_read_every_provider_asset_per_customer_and_update_after_them(
    definitions: ModuleType,
) -> None:
    graph = definitions.defs.resolve_asset_graph()
    providers = {AssetKey(f"{provider}_costs") for provider in PROVIDERS}
    assert graph.get(AssetKey("cost_anomalies")).parent_keys == providers
    assert graph.get(AssetKey("cost_forecast")).parent_keys == providers
    assert graph.get(AssetKey("budget_status")).parent_keys == {AssetKey("cost_forecast")}
    for name in RECOMMENDATIONS:  # downstream of every provider asset, like the analyses
        assert graph.get(AssetKey(name)).parent_keys == providers
    for name in (*ANALYSES, *RECOMMENDATIONS):
        node = graph.get(AssetKey(name))
        assert node.partitions_def == definitions.partitions
        assert node.automation_condition is not None
        assert node.automation_condition.get_label() == "eager"
    sensor = definitions.defs.resolve_sensor_def(AUTOMATION_SENSOR)
    assert sensor.default_status == DefaultSensorStatus.RUNNING


def test_a_collection_makes_the_daemon_request_that_customers_analyses_only(
    definitions: ModuleType,
) -> None:
    """Dagster's own evaluation of the automation conditions, as the daemon runs it: nothing at
    the first tick, acme's analyses (and nobody else's) after an aws_costs materialization of
    acme, then nothing again once they ran."""
    defs = definitions.defs
    with DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions(PARTITIONS_NAME, ["acme", "globex"])
        first = evaluate_automation_conditions(defs=defs, instance=instance)
        assert _requested(first) == set()
        instance.report_runless_asset_event(AssetMaterialization("aws_costs", partition="acme"))
        after = evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
        assert _requested(after) == {(name, "acme") for name in ANALYSES}
        for name in ANALYSES:
            instance.report_runless_asset_event(AssetMaterialization(name, partition="acme"))
        quiet = evaluate_automation_conditions(defs=defs, instance=instance, cursor=after.cursor)
        assert _requested(quiet) == set()


def _requested(result: EvaluateAutomationConditionsResult) -> set[tuple[str, str | None]]:
    return {
        (name, partition)
        for name in ANALYSES
        for partition in result.get_requested_partitions(AssetKey(name))
    }


def test_the_exchange_rates_asset_has_its_own_job_daily_schedule_and_first_load_sensor(
    definitions: ModuleType,
) -> None:
    defs = definitions.defs
    schedule = defs.resolve_schedule_def(RATES_SCHEDULE)
    assert (schedule.job_name, schedule.cron_schedule) == (RATES_JOB, "30 16 * * 1-5")
    assert schedule.execution_timezone == "Europe/Berlin"
    assert defs.resolve_sensor_def(FIRST_LOAD_SENSOR).job_name == RATES_JOB
    rates = defs.resolve_assets_def("exchange_rates")
    assert {"warehouse", "ecb"} <= rates.required_resource_keys
    # Collecting costs never collects rates as a side effect, and the other way round.
    assert "exchange_rates" not in {
        k.to_user_string() for k in defs.resolve_job_def(JOB_NAME).asset_layer.selected_asset_keys
    }


def test_each_customer_of_the_customers_file_is_a_partition_after_a_tick(
    definitions: ModuleType, tmp_path: Path
) -> None:
    """The partitions are Dagster's dynamic ones: the code location reads no customers file when
    it loads, and the collection schedule's tick makes them the file's customers."""
    book = load_customers(EXAMPLE_CUSTOMERS)
    assert not book.errors
    defs = definitions.defs
    assert definitions.partitions.name == PARTITIONS_NAME
    instance = DagsterInstance.local_temp(str(tmp_path))
    try:
        with build_schedule_context(
            instance=instance,
            scheduled_execution_time=datetime(2026, 11, 30, 12, 0, tzinfo=UTC),
            resources={"customers": CustomersResource(path=str(EXAMPLE_CUSTOMERS))},
            repository_def=defs.get_repository_def(),
        ) as context:
            defs.resolve_schedule_def(SCHEDULE_NAME).evaluate_tick(context)
        keys = definitions.partitions.get_partition_keys(dynamic_partitions_store=instance)
        assert sorted(keys) == sorted(book.customers)
    finally:
        instance.dispose()


def test_each_provider_asset_requires_the_client_resource_bound_under_its_key(
    definitions: ModuleType,
) -> None:
    defs = definitions.defs
    resources = defs.resources or {}
    for spec in PROVIDER_SPECS:
        asset = defs.resolve_assets_def(f"{spec.provider}_costs")
        assert spec.provider in asset.required_resource_keys
        assert type(resources[spec.provider]) is type(spec.resource)


def test_the_vocabulary_is_the_providers_of_the_specs_the_customers_file_and_the_writer() -> None:
    assert get_args(ProviderKey) == PROVIDERS
    assert tuple(spec.provider for spec in PROVIDER_SPECS) == PROVIDERS
    assert tuple(_Providers.model_fields) == PROVIDERS
    day, next_day = date(2026, 11, 1), date(2026, 11, 2)
    for provider in PROVIDERS:
        assert CostWindow("acme", provider, "1", day, next_day).provider == provider
    with pytest.raises(InvalidCostRows, match="provider must be one of"):
        CostWindow("acme", "oracle", "1", day, next_day)


def test_the_api_accepts_exactly_the_providers_of_the_vocabulary() -> None:
    schema = create_app().openapi()
    total = schema["paths"]["/api/v2/costs/{customer_id}/{provider}/total"]["get"]
    [provider] = [p for p in total["parameters"] if p["name"] == "provider"]
    assert sorted(_enum(schema, provider["schema"])) == sorted([*PROVIDERS, "all"])
    trigger = _component(schema, "TriggerRequest")["properties"]["providers"]
    items = next(s for s in trigger["anyOf"] if s.get("type") == "array")["items"]
    assert sorted(_enum(schema, items)) == sorted(PROVIDERS)


def _component(schema: dict[str, object], name: str) -> dict[str, object]:
    components = schema["components"]
    assert isinstance(components, dict)
    found = components["schemas"][name]
    assert isinstance(found, dict)
    return found


def _enum(schema: dict[str, object], node: dict[str, object]) -> list[str]:
    """The enum of a schema node, following one $ref."""
    ref = node.get("$ref")
    if isinstance(ref, str):
        node = _component(schema, ref.rsplit("/", 1)[-1])
    values = node.get("enum")
    assert isinstance(values, list)
    return [str(v) for v in values]
