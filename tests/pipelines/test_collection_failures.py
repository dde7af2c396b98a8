"""Runs that cannot collect fail with a message that says what to fix, before any API call."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster import StaticPartitionsDefinition, materialize

from cost_pipelines.assets.aws import AWS
from cost_pipelines.assets.collection import build_cost_asset
from cost_pipelines.assets.gcp import GCP
from cost_pipelines.resources.aws import AwsResource
from cost_pipelines.resources.clickhouse import ClickHouseResource
from cost_pipelines.resources.customers import CustomersResource
from cost_pipelines.resources.gcp import GcpResource
from tests.pipelines.aws_helpers import aws_entry
from tests.pipelines.rest_helpers import failure as failure_message
from tests.support.customers import write_customers


def _fail(customers_file: Path, customer_id: str, asset: object, **config: str) -> str:
    result = materialize(
        [asset],
        partition_key=customer_id,
        resources={
            # Never reached: each of these runs fails before writing anything.
            "warehouse": ClickHouseResource(url="http://127.0.0.1:9"),
            "customers": CustomersResource(path=str(customers_file)),
            "aws": AwsResource(),
            "gcp": GcpResource(),
        },
        run_config={"ops": {asset.key.path[0]: {"config": config}}} if config else None,  # type: ignore[attr-defined]
        raise_on_error=False,
    )
    assert not result.success
    return failure_message(result)


@pytest.fixture
def customers_file(tmp_path: Path) -> Path:
    return write_customers(
        tmp_path / "customers.yaml",
        {
            "acme": aws_entry("acme", "ACME_UNSET"),
            "broken": {"providers": {"aws": {"billing_account_id": "42"}}},
        },
    )


PARTITIONS = StaticPartitionsDefinition(["acme", "broken"])


def test_a_provider_the_customer_does_not_have_fails_as_not_configured(
    customers_file: Path,
) -> None:
    # Its resource holds no credentials: the run must fail before any session is opened.
    message = _fail(customers_file, "acme", build_cost_asset(GCP, PARTITIONS))
    assert "GCP is not configured for customer 'acme' (no providers.gcp entry in" in message


def test_an_invalid_customer_entry_fails_its_runs_naming_the_field(customers_file: Path) -> None:
    message = _fail(customers_file, "broken", build_cost_asset(AWS, PARTITIONS))
    assert "customer 'broken': providers.aws.billing_account_id" in message


def test_an_unset_credentials_variable_is_named_in_the_failure(
    customers_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ACME_UNSET_KEY_ID", raising=False)
    message = _fail(customers_file, "acme", build_cost_asset(AWS, PARTITIONS))
    assert (
        "customer 'acme': environment variable ACME_UNSET_KEY_ID "
        "(providers.aws.credentials.access_key_id_env) is not set" in message
    )


def test_a_run_config_window_must_be_ordered(customers_file: Path) -> None:
    asset = build_cost_asset(AWS, PARTITIONS)
    message = _fail(customers_file, "acme", asset, start="2026-11-10", end="2026-11-01")
    assert "run config window end 2026-11-01 must be after start 2026-11-10" in message
