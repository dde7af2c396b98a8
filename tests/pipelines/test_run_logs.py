"""A collection run's log lines, as the code location's loggers write them: JSON objects that name
the run, the customer and the provider, and never a credential."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from dagster import DagsterInstance, StaticPartitionsDefinition, materialize

from cost_local.sandbox.vultr import VultrBilling
from cost_pipelines.assets.collection import build_cost_asset
from cost_pipelines.assets.vultr import VULTR
from cost_pipelines.logs import DAGSTER_PYTHON_LOGS, configure_logging, log_context
from cost_pipelines.resources.clickhouse import ClickHouseResource
from cost_pipelines.resources.customers import CustomersResource
from tests.pipelines.test_vultr_costs import (  # noqa: F401 (the `vultr` and `globex` fixtures)
    END,
    RESOURCE,
    START,
    globex,
    vultr,
)

pytestmark = pytest.mark.slow
SECRET = "KEY-GLOBEX"  # the Vultr API key the `vultr` fixture puts in GLOBEX_KEY


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of the output as JSON (a line that is not JSON fails the test)."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_a_collection_run_logs_json_lines_with_its_run_id_customer_and_provider(
    globex: Path,  # noqa: F811
    vultr: VultrBilling,  # noqa: F811
    warehouse_resource: ClickHouseResource,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("LOG_FORMAT", "json")
    monkeypatch.setenv("LOG_LEVEL", "DEBUG")  # Dagster's events too (they are DEBUG records)
    monkeypatch.setenv("CUSTOMERS_FILE", str(globex))  # as the code location has it
    instance = DagsterInstance.ephemeral(settings={"python_logs": DAGSTER_PYTHON_LOGS})
    asset = build_cost_asset(VULTR, StaticPartitionsDefinition(["globex"]))
    capsys.readouterr()

    # A backfill's run: no customer or provider tags, only the partition (the customer).
    result = materialize(
        [asset],
        instance=instance,
        partition_key="globex",
        resources={
            "warehouse": warehouse_resource,
            "customers": CustomersResource(path=str(globex)),
            "vultr": RESOURCE,
        },
        run_config={"ops": {"vultr_costs": {"config": {"start": str(START), "end": str(END)}}}},
    )

    assert result.success
    output = capsys.readouterr().err
    # Dagster's own colored console copy of each record goes to stderr too: not ours to change.
    records = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    ours = [r for r in records if r.get("logger") == "dagster"]
    assert ours and {r.get("run_id") for r in ours} == {result.run_id}
    assert {r.get("customer_id") for r in ours} == {"globex"}
    # The provider where it applies: every record of the provider's step (the run's own, such as
    # RUN_START, belong to no step).
    assert {r.get("provider") for r in ours if r.get("step")} == {"vultr"}
    assert {"timestamp", "level", "logger", "event"} <= set(ours[0])
    # The asset's own messages, not Dagster's compound line, and Dagster's events by type.
    events = [r["event"] for r in ours]
    assert any(e.startswith(f"Vultr for globex: collecting [{START}, ") for e in events)
    assert {"ASSET_MATERIALIZATION", "STEP_SUCCESS"} <= {r.get("dagster_event") for r in ours}
    assert SECRET not in output


def test_records_of_plain_loggers_inside_a_run_carry_its_context_and_lose_their_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """What the clients log (retries, a failed request) through `logging` inside a collection:
    the run's fields come along, and a secret of the customers file is masked wherever it is."""
    customers = tmp_path / "customers.yaml"
    customers.write_text("customers: {acme: {providers: {vultr: {credentials: {api_key: K}}}}}")
    monkeypatch.setenv("K", "vultr-secret-value")
    monkeypatch.setenv("CUSTOMERS_FILE", str(customers))
    monkeypatch.setenv("LOG_FORMAT", "json")
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        configure_logging()
        with log_context(run_id="run-1", customer_id="acme", provider="vultr"):
            logging.getLogger("cost_pipelines.resources.retry").warning(
                "GET https://api.vultr.com/v2/billing (key vultr-secret-value): HTTP 503; retry 1"
            )
        logging.getLogger("cost_pipelines.warehouse").info("outside the run")
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)

    output = capsys.readouterr().err
    inside, outside = json_lines(output)
    assert inside["run_id"] == "run-1"
    assert (inside["customer_id"], inside["provider"]) == ("acme", "vultr")
    assert inside["level"] == "warning"
    assert inside["event"].startswith("GET https://api.vultr.com/v2/billing (key [redacted])")
    assert "run_id" not in outside and "customer_id" not in outside
    assert "vultr-secret-value" not in output
