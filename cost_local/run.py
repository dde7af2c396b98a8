"""`make run`: the whole system on the embedded default, in one terminal.

Starts, in order: the warehouse endpoint (chDB), the provider sandbox (unless CUSTOMERS_FILE points
at a real customers file), the Dagster webserver + daemon, and the API, each a component of the
supervisor (cost_local.supervisor): one that exits is restarted with backoff while the others keep
serving. Ctrl-C or SIGTERM (also twice, also to the whole process group) stops every process it
started, newest first. To add a service, start one more Component in `start`.
"""

from __future__ import annotations

import os
import secrets
import socket
import sys
from pathlib import Path

from cost_api.auth import add_key
from cost_local.dagster_dev import STOP_TIMEOUT_S, dagster_command, write_dagster_home
from cost_local.sandbox.demo import ENV_FILE_NAME as SANDBOX_ENV_FILE
from cost_local.sandbox.demo import read_environment_file
from cost_local.supervisor import Component, Supervisor, http_ok, supervise
from cost_pipelines.warehouse.connection import WarehouseSettings

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
STATUS_FILE_NAME = "stack-status.json"  # the supervisor's view, for the API's /health


class StackError(RuntimeError):
    """The stack cannot start; the message says why and what to do."""


def _port(name: str, default: int) -> int:
    raw = os.environ.get(name, str(default))
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise StackError(f"{name}={raw!r} is not a TCP port number")
    return int(raw)


def _ensure_free(name: str, port: int) -> None:
    with socket.socket() as sock:
        if sock.connect_ex(("127.0.0.1", port)) == 0:
            raise StackError(
                f"port {port} ({name}) on 127.0.0.1 is already in use: stop what holds it or set "
                f"{name} to another port"
            )


def _warehouse_password(data_dir: Path) -> str:
    """A password for the local warehouse, made once: other local users of the machine cannot
    query it (or read files through it) without access to DATA_DIR."""
    path = data_dir / "warehouse-password"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(24) + "\n")
        path.chmod(0o600)
    return path.read_text().strip()


def _demo_key(data_dir: Path, keys_file: Path) -> str:
    """The demo key: created once (only its hash goes in the keys file), shown at every start."""
    token_file = data_dir / "demo-api-key"
    if token_file.exists() and keys_file.exists():
        return token_file.read_text().strip()
    token = add_key(keys_file, "demo", ["*"])
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    return token


def start(stack: Supervisor) -> None:
    data_dir = Path(os.environ.get("DATA_DIR", ".data")).resolve()
    ports = {
        name: _port(name, default)
        for name, default in (("WAREHOUSE_PORT", 8123), ("DAGSTER_PORT", 3000), ("API_PORT", 8000))
    }
    embedded = not os.environ.get("CLICKHOUSE_URL")  # else: the user's own ClickHouse
    for name, port in ports.items():
        if embedded or name != "WAREHOUSE_PORT":
            _ensure_free(name, port)
    data_dir.mkdir(parents=True, exist_ok=True)
    stack.status_file = data_dir / STATUS_FILE_NAME
    env = dict(os.environ)
    env.update({name: str(port) for name, port in ports.items()})
    env["DATA_DIR"] = str(data_dir)
    env["STACK_STATUS_FILE"] = str(stack.status_file)
    if embedded:
        password = _warehouse_password(data_dir)
        env["WAREHOUSE_PASSWORD"] = env["CLICKHOUSE_PASSWORD"] = password
        warehouse_args = ["--data-dir", str(data_dir / "warehouse"), "--host", "127.0.0.1"]
        warehouse_args += ["--port", str(ports["WAREHOUSE_PORT"])]
        ping = f"http://127.0.0.1:{ports['WAREHOUSE_PORT']}/ping"
        warehouse = [str(BIN / "cost-warehouse"), *warehouse_args]
        stack.start(Component("warehouse", warehouse, env, http_ok(ping)))
    stack.run_once("cost-migrate", [str(BIN / "cost-migrate")], env)

    if "CUSTOMERS_FILE" not in env:
        customers_file = data_dir / "customers.yaml"
        customers_file.unlink(missing_ok=True)
        stack.start(
            Component("sandbox", [str(BIN / "cost-sandbox")], env, customers_file.exists, ROOT)
        )
        # The demo customer's sandbox credentials, for the collectors (written before the file).
        env.update(read_environment_file(data_dir / SANDBOX_ENV_FILE))
        env["CUSTOMERS_FILE"] = str(customers_file)

    keys_file = Path(env.setdefault("API_KEYS_FILE", str(data_dir / "api_keys.yaml")))
    token = _demo_key(data_dir, keys_file)

    dagster_home = data_dir / "dagster"
    write_dagster_home(dagster_home)
    env["DAGSTER_HOME"] = str(dagster_home)
    dagster_url = f"http://127.0.0.1:{ports['DAGSTER_PORT']}"
    env.setdefault("DAGSTER_GRAPHQL_URL", f"{dagster_url}/graphql")
    env.setdefault("DAGSTER_UI_URL", dagster_url)
    dagster = dagster_command(ROOT / "workspace.yaml", ports["DAGSTER_PORT"])
    stack.start(
        Component(
            "dagster",
            dagster,
            env,
            http_ok(f"{dagster_url}/server_info"),
            ROOT,
            stop_timeout_s=STOP_TIMEOUT_S,
        )
    )

    api_url = f"http://127.0.0.1:{ports['API_PORT']}"
    api = [str(BIN / "cost-api"), "--port", str(ports["API_PORT"])]
    stack.start(Component("api", api, env, http_ok(f"{api_url}/openapi.json"), ROOT))

    warehouse_line = (
        f"http://127.0.0.1:{ports['WAREHOUSE_PORT']}   (ClickHouse HTTP interface)\n"
        f"               user default, password in {data_dir / 'warehouse-password'}"
        if embedded
        else WarehouseSettings().describe()
    )
    print(
        f"""
make run: the system is up (data in {data_dir})
  Dagster UI   {dagster_url}
  API          {api_url}   (docs: {api_url}/docs)
  Warehouse    {warehouse_line}
  Demo API key {token}
  Try: curl -H "Authorization: Bearer {token}" {api_url}/api/v2/costs/demo/all/total
A component that exits is restarted; Ctrl-C stops everything.""",
        flush=True,
    )


def main() -> int:
    return supervise(start, errors=(StackError,))


if __name__ == "__main__":
    sys.exit(main())
