"""`make run` with CUSTOMERS_FILE naming real customers: no sandbox, so no demo customer and no
demo key. Earlier versions made and printed a key that reads every customer at every start; keys
for real customers are made on purpose with cost-keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from cost_api.auth import add_key, read_keys
from tests.local.test_make_run import start_stack, stop, wait_for
from tests.support.customers import write_customers
from tests.support.ports import free_ports

pytestmark = pytest.mark.slow


def test_with_real_customers_no_key_is_made_or_printed(tmp_path: Path) -> None:
    # What an earlier version left in this DATA_DIR: a demo key that reads every customer.
    data = tmp_path / "data"
    data.mkdir()
    token = add_key(data / "api_keys.yaml", "demo", ["*"])
    (data / "demo-api-key").write_text(token + "\n")
    [closed] = free_ports(1)  # nothing listens: no collection leaves the machine
    nowhere = f"http://127.0.0.1:{closed}"
    customers = write_customers(
        tmp_path / "customers.yaml",
        {
            "acme": {
                "providers": {
                    "vultr": {
                        "billing_account_ids": ["acme-vultr"],
                        "credentials": {"api_key": "ACME_VULTR_KEY"},
                        "endpoint_url_env": "ACME_VULTR_ENDPOINT",
                    }
                }
            }
        },
    )
    running = start_stack(
        tmp_path,
        {
            "CUSTOMERS_FILE": str(customers),
            "ACME_VULTR_KEY": "not-a-real-key",
            "ACME_VULTR_ENDPOINT": nowhere,
            "EXCHANGE_RATES_URL": nowhere,
        },
    )
    try:
        wait_for(running, "the system is up", timeout=240)
    finally:
        code = stop(running)

    log = running.log()
    assert code == 0, log[-4000:]
    assert "Demo API key" not in log and "Bearer" not in log
    assert "cost-keys --file" in log  # how to make one instead
    assert "revoked the demo API key" in log and token not in log
    assert not (running.data_dir / "demo-api-key").exists()
    assert read_keys(running.data_dir / "api_keys.yaml") == []
