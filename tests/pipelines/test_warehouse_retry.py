"""A collection whose warehouse stops during the run is retried by Dagster and, once the
warehouse is back, the next attempt writes the window: nothing lost, nothing twice."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from cost_local.sandbox.vultr import VultrBilling
from cost_local.sandbox.vultr_ledger import ledger
from cost_pipelines.assets import collection
from cost_pipelines.assets import vultr as vultr_asset
from cost_pipelines.assets.vultr import VULTR
from cost_pipelines.resources.clickhouse import ClickHouseResource
from cost_pipelines.resources.vultr import VultrResource
from tests.pipelines.rest_helpers import run_costs
from tests.pipelines.test_vultr_costs import END, START, TODAY, account_id, bills, entry, stored
from tests.support.customers import write_customers
from tests.support.processes import start_warehouse

pytestmark = pytest.mark.slow


def test_a_run_whose_warehouse_stopped_is_retried_and_completes_once_it_is_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(collection, "WAREHOUSE_RETRY_WAIT_S", 3.0)
    data_dir = tmp_path / "warehouse"
    first = start_warehouse(data_dir)
    warehouse = ClickHouseResource(url=first.url, database="default")
    warehouse.get_client()  # migrated while it is up
    keys = {"KEY-GLOBEX": account_id("globex")}
    customers = write_customers(tmp_path / "c.yaml", {"globex": entry("globex", "GLOBEX_KEY")})
    with VultrBilling(keys, bills("globex"), today=TODAY) as vultr:
        monkeypatch.setenv("TEST_VULTR_ENDPOINT", vultr.base_url)
        monkeypatch.setenv("GLOBEX_KEY", "KEY-GLOBEX")
        monkeypatch.setattr(vultr_asset, "utc_now", lambda: vultr.now)
        first.stop()  # down before the run writes
        results: dict[str, object] = {}

        def run() -> None:
            results.update(
                run_costs(
                    VULTR,
                    VultrResource(retry_base_delay_s=0.01),
                    customers,
                    ["globex"],
                    ClickHouseResource(url=first.url, database="default"),
                    START,
                    END,
                )
            )

        runner = threading.Thread(target=run)
        runner.start()
        deadline = time.monotonic() + 120
        while not vultr.requests and time.monotonic() < deadline:  # the first attempt fetched
            time.sleep(0.2)
        time.sleep(1)
        second = start_warehouse(data_dir, port=first.port)  # back, same data, same port
        try:
            runner.join(timeout=300)
            [result] = results.values()
            assert result.success  # type: ignore[attr-defined]
            steps = [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]  # type: ignore[attr-defined]
            assert steps, "the first attempt was not retried"
            again = ClickHouseResource(url=second.url, database="default")
            assert stored(again, "globex") == ledger(vultr, account_id("globex"), START, END)
        finally:
            second.stop()
