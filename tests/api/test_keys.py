"""API keys managed with `cost-keys`: a new key's token is printed once and only its hash stored;
list never shows a token; a revoked or expired key stops working at once, without a restart. The
demo key of `make run` reads only the demo customer, and a wildcard one of an older DATA_DIR is
replaced."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cost_api.auth import ALL_CUSTOMERS, add_key, hash_key, read_keys
from cost_local.run import demo_key
from tests.support.api import serve_api
from tests.support.processes import REPO_ROOT, WarehouseProcess


def cost_keys(keys_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cost_api.key_admin", "--file", str(keys_file), *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


def test_cost_keys_adds_lists_and_revokes_and_the_api_follows_without_a_restart(
    warehouse: WarehouseProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys_file = tmp_path / "keys.yaml"
    added = cost_keys(keys_file, "add", "ops", "--customer", "acme", "--expires-in-days", "30")
    assert added.returncode == 0, added.stderr
    token = added.stdout.strip()
    assert token.startswith("cpk_")
    assert token not in keys_file.read_text() and hash_key(token) in keys_file.read_text()
    assert keys_file.stat().st_mode & 0o777 == 0o600
    listed = cost_keys(keys_file, "list")
    assert listed.stdout.startswith("ops\tcustomers=acme\texpires=20"), listed.stdout
    assert token not in listed.stdout and hash_key(token) not in listed.stdout

    headers = {"Authorization": f"Bearer {token}"}
    with serve_api(monkeypatch, warehouse.port, keys_file) as api:
        path = "/api/v2/costs/acme/all/total"
        assert api.get(path, params={"days": 100_000}, headers=headers).status_code == 422
        assert api.get(path.replace("acme", "other"), headers=headers).status_code == 403
        revoked = cost_keys(keys_file, "revoke", "ops")
        assert revoked.returncode == 0, revoked.stderr
        assert api.get(path, headers=headers).status_code == 401
    assert cost_keys(keys_file, "revoke", "ops").returncode == 1


def test_an_expired_key_is_unknown(
    warehouse: WarehouseProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys_file = tmp_path / "keys.yaml"
    expired = add_key(keys_file, "old", ["acme"], datetime.now(UTC) - timedelta(seconds=1))
    assert "(expired)" in cost_keys(keys_file, "list").stdout
    with serve_api(monkeypatch, warehouse.port, keys_file) as api:
        answer = api.get(
            "/api/v2/costs/acme/all/total", headers={"Authorization": f"Bearer {expired}"}
        )
        assert answer.status_code == 401


def test_cost_keys_refuses_a_customer_id_that_cannot_exist(tmp_path: Path) -> None:
    refused = cost_keys(tmp_path / "keys.yaml", "add", "ops", "--customer", "../etc")
    assert refused.returncode == 2 and "customer '../etc'" in refused.stderr
    assert not (tmp_path / "keys.yaml").exists()


def test_the_demo_key_reads_only_the_demo_customer_and_replaces_a_wildcard_one(
    tmp_path: Path,
) -> None:
    keys_file = tmp_path / "api_keys.yaml"
    old = add_key(keys_file, "demo", [ALL_CUSTOMERS])  # what earlier versions made
    (tmp_path / "demo-api-key").write_text(old + "\n")
    add_key(keys_file, "ops", ["acme"])

    token = demo_key(tmp_path, keys_file)

    assert token != old
    by_name = {key.name: key for key in read_keys(keys_file)}
    assert by_name["demo"].customers == {"demo"}
    assert by_name["demo"].sha256 == hash_key(token)
    assert set(by_name) == {"demo", "ops"}
    assert demo_key(tmp_path, keys_file) == token  # kept from then on
