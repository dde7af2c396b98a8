"""Alert events reach a real HTTP receiver on 127.0.0.1 once each: anomalies, budget thresholds
reached or forecast, failed checks, stale pairs and restatements; a receiver that is down gets
them later, still once, and no event carries the webhook's secret."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from dagster import (
    AssetCheckEvaluation,
    AssetKey,
    AssetMaterialization,
    DagsterInstance,
    SensorResult,
    StaticPartitionsDefinition,
    build_sensor_context,
    materialize,
)

from cost_local.sandbox import demo
from cost_local.sandbox.bills import generate_bills
from cost_pipelines.assets.analytics import build_analytics_assets
from cost_pipelines.customers import load_customers
from cost_pipelines.resources.clickhouse import ClickHouseResource
from cost_pipelines.resources.customers import CustomersResource
from cost_pipelines.sensors import alert_tick, alerts_sensor
from cost_pipelines.warehouse.writer import CostWindow, replace_window
from tests.support.bills import store_bills
from tests.support.customers import write_customers
from tests.support.ports import PortPicker

TODAY = datetime.now(UTC).date()
START = TODAY - timedelta(days=70)
SECRET = "hook-token-7f3a9c"
VULTR = {"billing_account_ids": ["acct-1"], "credentials": {"api_key": "UNUSED_KEY"}}


class Receiver:
    """A webhook receiver: an HTTP server on 127.0.0.1 recording every POST."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.received: list[tuple[str, dict[str, Any]]] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                received.append((self.headers["Idempotency-Key"], body))
                self.send_response(202)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def analysed(
    warehouse_resource: ClickHouseResource,
    tmp_path: Path,
    free_port: PortPicker,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[Path, int]:
    """The demo's bills analysed with a budget far below its cost; alerts to a local webhook
    whose URL (with its token) is in an environment variable."""
    lines = generate_bills(
        list(demo.accounts().values()),
        START,
        TODAY + timedelta(days=1),
        spike_on=TODAY - timedelta(days=2),
    )
    store_bills(warehouse_resource.get_client(), "demo", lines, START, TODAY + timedelta(days=1))
    port = free_port()
    monkeypatch.setenv("DEMO_ALERTS_URL", f"http://127.0.0.1:{port}/hooks/{SECRET}")
    entry = {
        "providers": {"vultr": VULTR},
        "budgets": [{"name": "tiny", "amount": "1", "currency": "USD"}],
        "alerts": {"webhook_url_env": "DEMO_ALERTS_URL"},
    }
    customers = write_customers(tmp_path / "customers.yaml", {"demo": entry})
    result = materialize(
        build_analytics_assets(StaticPartitionsDefinition(["demo"])),
        partition_key="demo",
        resources={
            "warehouse": warehouse_resource,
            "customers": CustomersResource(path=str(customers)),
        },
    )
    assert result.success
    return customers, port


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    with DagsterInstance.ephemeral() as instance:
        instance.report_runless_asset_event(
            AssetCheckEvaluation(
                asset_key=AssetKey("vultr_costs"),
                check_name="focus_conformance",
                passed=False,
                partition="demo",
            )
        )
        yield instance


def test_each_finding_is_posted_once_and_never_carries_the_secret(
    analysed: tuple[Path, int],
    warehouse_resource: ClickHouseResource,
    instance: DagsterInstance,
) -> None:
    customers, port = analysed
    receiver = Receiver(port)
    resources = {
        "warehouse": warehouse_resource,
        "customers": CustomersResource(path=str(customers)),
    }
    try:
        first = alerts_sensor()(build_sensor_context(instance=instance, resources=resources))
        assert isinstance(first, SensorResult)
        second = alerts_sensor()(
            build_sensor_context(instance=instance, cursor=first.cursor, resources=resources)
        )
        assert isinstance(second, SensorResult)
    finally:
        receiver.stop()
    keys = [key for key, _ in receiver.received]
    assert len(keys) == len(set(keys)) and all(
        body["idempotency_key"] == key for key, body in receiver.received
    )
    kinds = {body["type"] for _, body in receiver.received}
    assert kinds == {"anomaly", "budget_reached", "budget_forecast", "check_failed"}
    budgets = sorted(
        b["threshold_percent"] for _, b in receiver.received if b["type"] == "budget_reached"
    )
    assert budgets == ["100", "50", "80"]
    assert any(
        b["day"] == str(TODAY - timedelta(days=2))
        for _, b in receiver.received
        if b["type"] == "anomaly"
    )
    assert SECRET not in json.dumps(receiver.received) and SECRET not in (second.cursor or "")
    assert "0 alert events sent" in str(second.skip_reason)


def test_a_receiver_that_is_down_gets_the_events_later_and_once(
    analysed: tuple[Path, int],
    warehouse_resource: ClickHouseResource,
    instance: DagsterInstance,
) -> None:
    customers, port = analysed
    book = load_customers(customers)
    client = warehouse_resource.get_client()
    now = datetime.now(UTC)
    cursor, sent, failed = alert_tick(instance, client, book, None, now)
    assert not sent and failed
    # Too early for a retry: nothing is attempted.
    cursor, sent, again = alert_tick(instance, client, book, cursor, now + timedelta(seconds=5))
    assert not sent and not again
    receiver = Receiver(port)
    try:
        cursor, sent, still = alert_tick(
            instance, client, book, cursor, now + timedelta(seconds=31)
        )
        _, more, _ = alert_tick(instance, client, book, cursor, now + timedelta(hours=2))
    finally:
        receiver.stop()
    assert sorted(sent) == sorted(failed) and not still and not more
    assert sorted(key for key, _ in receiver.received) == sorted(failed)


def test_a_pair_whose_collections_stopped_is_reported_stale_once(
    analysed: tuple[Path, int],
    warehouse_resource: ClickHouseResource,
    instance: DagsterInstance,
) -> None:
    customers, port = analysed
    book = load_customers(customers)
    client = warehouse_resource.get_client()
    instance.report_runless_asset_event(AssetMaterialization("vultr_costs", partition="demo"))
    receiver = Receiver(port)
    now = datetime.now(UTC)
    try:
        cursor, _, _ = alert_tick(instance, client, book, None, now)
        # Vultr's poll interval is 1 h, plus 30 min of grace: two hours later it is stale.
        cursor, sent, _ = alert_tick(instance, client, book, cursor, now + timedelta(hours=2))
        _, again, _ = alert_tick(instance, client, book, cursor, now + timedelta(hours=3))
    finally:
        receiver.stop()
    stale = [body for _, body in receiver.received if body["type"] == "stale"]
    assert [body["provider"] for body in stale] == ["vultr"] and not again
    assert [key for key in sent if key.startswith("stale:")] == [stale[0]["idempotency_key"]]


def test_a_restatement_above_the_customers_threshold_is_posted_once(
    warehouse_resource: ClickHouseResource,
    tmp_path: Path,
    free_port: PortPicker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = warehouse_resource.get_client()
    day = TODAY - timedelta(days=5)
    window = CostWindow("restated", "vultr", "acct-1", day, day + timedelta(days=2))

    def bill(first: str, second: str) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "ChargePeriodStart": [str(day), str(day + timedelta(days=1))],
                "BilledCost": [first, second],
                "BillingCurrency": ["USD", "USD"],
                "ServiceName": ["Compute", "Compute"],
            }
        )

    replace_window(client, window, bill("100", "100"), source="test")
    # +30 on the first day (above 10 and 5%); +2 on the second (below both).
    replace_window(client, window, bill("130", "102"), source="test", run_id="restating-run")
    port = free_port()
    monkeypatch.setenv("RESTATED_ALERTS_URL", f"http://127.0.0.1:{port}/hooks/{SECRET}")
    entry = {
        "providers": {"vultr": VULTR},
        "alerts": {"webhook_url_env": "RESTATED_ALERTS_URL"},
        "restatements": {"min_amount": "10", "min_percent": 5},
    }
    book = load_customers(write_customers(tmp_path / "customers.yaml", {"restated": entry}))
    receiver = Receiver(port)
    now = datetime.now(UTC)
    try:
        with DagsterInstance.ephemeral() as instance:
            cursor, sent, _ = alert_tick(instance, client, book, None, now)
            _, again, _ = alert_tick(instance, client, book, cursor, now + timedelta(minutes=1))
    finally:
        receiver.stop()
    restated = [body for _, body in receiver.received if body["type"] == "restatement"]
    assert [(b["day"], b["previous"], b["new"], b["delta"]) for b in restated] == [
        (str(day), "100", "130", "30")
    ]
    assert restated[0]["run_id"] == "restating-run" and not again
    assert restated[0]["idempotency_key"] in sent
    assert SECRET not in json.dumps(receiver.received)
