"""vultr_costs when the Vultr API misbehaves for one customer (a fault-injecting proxy in front of
the Vultr simulator): bursts of 429 with Retry-After and passing 5xx are retried; a lasting 5xx,
an answer slower than the client's timeout or a truncated body fail the run saying what happened;
an unknown extra field is tolerated; a missing required field fails clearly. A failed run leaves
the window's previous data as it was, and the other customer's run succeeds."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cost_local.sandbox.vultr import VultrBilling
from cost_local.sandbox.vultr_ledger import ledger
from cost_pipelines.assets import vultr as vultr_asset
from cost_pipelines.assets.vultr import VULTR
from cost_pipelines.resources.clickhouse import ClickHouseResource
from cost_pipelines.resources.vultr import VultrResource
from tests.pipelines.rest_helpers import failure, run_costs
from tests.pipelines.test_vultr_costs import END, START, TODAY, account_id, bills, entry, stored
from tests.support.chaos import Chaos, Fault, chaos_proxy
from tests.support.customers import write_customers

pytestmark = pytest.mark.slow
# Short timeouts and delays, so the slow and failing cases end quickly.
RESOURCE = VultrResource(
    retry_attempts=3, retry_base_delay_s=0.01, retry_max_delay_s=2.0, read_timeout_s=1.0
)


@dataclass
class Case:
    faults: list[Fault]
    fails_with: str | None  # None: the run succeeds with the provider's numbers


CASES = {
    "429-burst-with-retry-after": Case([Fault("status", 429, {"Retry-After": "1"}, times=2)], None),
    "passing-5xx": Case([Fault("status", 503, times=1), Fault("status", 502, times=1)], None),
    "lasting-5xx": Case([Fault("status", 500)], "HTTP 500"),
    "slower-than-the-timeout": Case([Fault("slow", seconds=2.5)], "ReadTimeout"),
    "truncated-body": Case([Fault("truncate")], "RemoteProtocolError"),
    "unknown-extra-field": Case([Fault("add_field", name="x_new_vultr_field")], None),
    "missing-required-field": Case(
        [Fault("drop_field", name="total")], "answered without the required field 'total'"
    ),
}


@pytest.fixture
def chaos(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[VultrBilling, Chaos]]:
    keys = {"KEY-GLOBEX": account_id("globex"), "KEY-UMBRELLA": account_id("umbrella")}
    with (
        VultrBilling(keys, [*bills("globex"), *bills("umbrella")], today=TODAY) as server,
        chaos_proxy(server.base_url, victim="Bearer KEY-GLOBEX") as proxy,
    ):
        monkeypatch.setenv("TEST_VULTR_ENDPOINT", proxy.url)
        monkeypatch.setenv("GLOBEX_KEY", "KEY-GLOBEX")
        monkeypatch.setenv("UMBRELLA_KEY", "KEY-UMBRELLA")
        monkeypatch.setattr(vultr_asset, "utc_now", lambda: server.now)
        yield server, proxy


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_a_misbehaving_vultr_api_fails_or_is_survived_and_loses_nothing(
    tmp_path: Path,
    chaos: tuple[VultrBilling, Chaos],
    warehouse_resource: ClickHouseResource,
    case: str,
) -> None:
    vultr, proxy = chaos
    customers = write_customers(
        tmp_path / "c.yaml",
        {"globex": entry("globex", "GLOBEX_KEY"), "umbrella": entry("umbrella", "UMBRELLA_KEY")},
    )
    both = ["globex", "umbrella"]
    first = run_costs(VULTR, RESOURCE, customers, both, warehouse_resource, START, END)
    assert all(result.success for result in first.values())
    before = stored(warehouse_resource, "globex")
    assert before == ledger(vultr, account_id("globex"), START, END)

    proxy.faults = CASES[case].faults
    results = run_costs(VULTR, RESOURCE, customers, both, warehouse_resource, START, END)

    assert proxy.applied, "the fault was never injected"
    expected = CASES[case].fails_with
    if expected is None:
        assert results["globex"].success, failure(results["globex"])
    else:
        message = failure(results["globex"])
        assert expected in message, message
        assert "KEY-GLOBEX" not in message
    assert stored(warehouse_resource, "globex") == before  # intact either way
    assert results["umbrella"].success, failure(results["umbrella"])
    assert stored(warehouse_resource, "umbrella") == ledger(
        vultr, account_id("umbrella"), START, END
    )
