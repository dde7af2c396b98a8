"""`make run`: the whole system on the embedded default, in one terminal.

Starts, in order: the warehouse endpoint (chDB), the provider sandbox (unless CUSTOMERS_FILE points
at a real customers file), the Dagster webserver + daemon, and the API, each a component of the
supervisor (cost_local.supervisor): one that exits is restarted with backoff while the others keep
serving. Ctrl-C or SIGTERM (also twice, also to the whole process group) stops every process it
started, newest first. To add a service, start one more Component in `start`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import sys
from pathlib import Path

from cost_api.auth import add_key, hash_key, read_keys, revoke_key
from cost_local.dagster_dev import STOP_TIMEOUT_S, dagster_command, write_dagster_home
from cost_local.first_start import FirstMinute, run_first_minute
from cost_local.sandbox.demo import CUSTOMER_ID as DEMO_CUSTOMER
from cost_local.sandbox.demo import ENV_FILE_NAME as SANDBOX_ENV_FILE
from cost_local.sandbox.demo import read_environment_file
from cost_local.supervisor import Component, Supervisor, http_ok, supervise
from cost_pipelines.logs import configure_logging
from cost_pipelines.warehouse.connection import WarehouseSettings

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DEMO_KEY_NAME = "demo"
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


def make_private(data_dir: Path) -> None:
    """DATA_DIR for this user only: the warehouse parts open without its password and the Dagster
    run database is plain SQLite. The umask makes everything created from now on (by us and the
    processes we start) 0700/0600; what an older start left is tightened once."""
    os.umask(0o077)
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o700)
    for root, dirs, files in os.walk(data_dir):
        for names, mode in ((dirs, 0o700), (files, 0o600)):
            for name in names:
                path = os.path.join(root, name)
                if not os.path.islink(path):
                    with contextlib.suppress(OSError):  # gone meanwhile
                        os.chmod(path, mode)


def _warehouse_password(data_dir: Path) -> str:
    """A password for the local warehouse, made once: other local users of the machine cannot
    query it (or read files through it) without access to DATA_DIR."""
    path = data_dir / "warehouse-password"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(24) + "\n")
        path.chmod(0o600)
    return path.read_text().strip()


def demo_key(data_dir: Path, keys_file: Path) -> str:
    """The demo key, for the sandbox's demo customer only: created once (only its hash goes in
    the keys file), shown at every start. A key of an older DATA_DIR that reads more than the
    demo customer is revoked and replaced."""
    token_file = data_dir / "demo-api-key"
    demo = [key for key in read_keys(keys_file) if key.name == DEMO_KEY_NAME]
    scoped = [key for key in demo if key.customers == {DEMO_CUSTOMER}]
    if token_file.exists() and scoped and len(scoped) == len(demo):
        token = token_file.read_text().strip()
        if any(key.sha256 == hash_key(token) for key in scoped):
            return token
    revoke_key(keys_file, DEMO_KEY_NAME)
    token = add_key(keys_file, DEMO_KEY_NAME, [DEMO_CUSTOMER])
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    return token


def _say(line: str) -> None:
    """A progress line of the set-up, in LOG_FORMAT like the supervisor's."""
    logging.getLogger("cost_local.run").info("make run: %s", line)


def forget_demo_key(data_dir: Path, keys_file: Path) -> None:
    """Without the sandbox there is no demo customer: a demo key an earlier start left (older
    versions made one that reads every customer) is revoked, and its token file removed."""
    if keys_file.exists() and revoke_key(keys_file, DEMO_KEY_NAME):
        _say(f"revoked the demo API key an earlier start left in {keys_file}")
    (data_dir / "demo-api-key").unlink(missing_ok=True)


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
    make_private(data_dir)
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

    sandboxed = "CUSTOMERS_FILE" not in env
    if sandboxed:
        customers_file = data_dir / "customers.yaml"
        customers_file.unlink(missing_ok=True)
        stack.start(
            Component("sandbox", [str(BIN / "cost-sandbox")], env, customers_file.exists, ROOT)
        )
        # The demo customer's sandbox credentials, for the collectors (written before the file).
        env.update(read_environment_file(data_dir / SANDBOX_ENV_FILE))
        env["CUSTOMERS_FILE"] = str(customers_file)

    keys_file = Path(env.setdefault("API_KEYS_FILE", str(data_dir / "api_keys.yaml")))
    # A demo key only beside the demo customer: with real customers, keys are made on purpose.
    if sandboxed:
        token: str | None = demo_key(data_dir, keys_file)
    else:
        token = None
        forget_demo_key(data_dir, keys_file)

    dagster_home = data_dir / "dagster"
    write_dagster_home(dagster_home)
    env["DAGSTER_HOME"] = str(dagster_home)
    dagster_url = f"http://127.0.0.1:{ports['DAGSTER_PORT']}"
    env.setdefault("DAGSTER_GRAPHQL_URL", f"{dagster_url}/graphql")
    env.setdefault("DAGSTER_UI_URL", dagster_url)
    dagster = dagster_command(ROOT / "workspace.yaml", ports["DAGSTER_PORT"])
    _say("starting Dagster (webserver and daemon: a minute or two)")
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
    env.setdefault("PUBLIC_BASE_URL", api_url)
    api = [str(BIN / "cost-api"), "--port", str(ports["API_PORT"])]
    stack.start(Component("api", api, env, http_ok(f"{api_url}/openapi.json"), ROOT))

    # Collect now rather than at the next quarter hour; at the first start, the demo's year too.
    run_first_minute(
        FirstMinute(
            data_dir=data_dir,
            graphql_url=env["DAGSTER_GRAPHQL_URL"],
            ui_url=env["DAGSTER_UI_URL"],
            customers_file=Path(env["CUSTOMERS_FILE"]),
            sandboxed=sandboxed,
            moto_url=env.get("SANDBOX_AWS_ENDPOINT") if sandboxed else None,
            say=_say,
            stop_requested=lambda: stack.stop_requested,
        )
    )
    stack.sleep(0)  # raises StopRequested if a stop came meanwhile: no "up" banner then

    warehouse_line = (
        f"http://127.0.0.1:{ports['WAREHOUSE_PORT']}   (ClickHouse HTTP interface)\n"
        f"               user default, password in {data_dir / 'warehouse-password'}"
        if embedded
        else WarehouseSettings().describe()
    )
    key_lines = (
        f"  Demo API key {token}   (reads the demo customer only)\n"
        f'  Try: curl -H "Authorization: Bearer {token}" {api_url}/api/v2/costs/demo/all/total'
        if token
        else f"  API keys     cost-keys --file {keys_file} add NAME --customer CUSTOMER_ID"
    )
    print(
        f"""
make run: the system is up (data in {data_dir})
  Dagster UI   {dagster_url}   (no authentication: loopback only)
  API          {api_url}   (docs: {api_url}/docs)
  Warehouse    {warehouse_line}
{key_lines}
A component that exits is restarted; Ctrl-C stops everything.""",
        flush=True,
    )


def main() -> int:
    # The supervisor's records (starts, exits, restarts) in LOG_FORMAT, like every component's.
    configure_logging()
    log = logging.getLogger("cost_local.run")
    stack = Supervisor(log=lambda line: log.info("make run: %s", line))
    return supervise(start, stack=stack, errors=(StackError,))


if __name__ == "__main__":
    sys.exit(main())
