"""`make run`: the whole system on the embedded default, in one terminal.

Starts, in order: the warehouse endpoint (chDB), the provider sandbox (unless CUSTOMERS_FILE points
at a real customers file), the Dagster webserver + daemon, and the API. Ctrl-C or SIGTERM stops
every process it started, newest first.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import httpx

from cost_api.auth import add_key
from cost_local.dagster_dev import (
    DagsterStartError,
    start_dagster,
    stop_dagster,
    write_dagster_home,
)
from cost_local.sandbox.demo import ENV_FILE_NAME as SANDBOX_ENV_FILE
from cost_local.sandbox.demo import read_environment_file
from cost_pipelines.warehouse.connection import WarehouseSettings

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
READY_TIMEOUT_S = 90.0


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


def _wait_until(what: str, check: Callable[[], bool], proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StackError(f"{what} exited with code {proc.returncode} while starting")
        try:
            if check():
                return
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.3)
    raise StackError(f"{what} did not become ready within {READY_TIMEOUT_S:.0f} s")


def _http_ok(url: str) -> Callable[[], bool]:
    return lambda: httpx.get(url, timeout=2).status_code == 200


class Stack:
    """The processes `make run` started, stopped newest first."""

    def __init__(self) -> None:
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def spawn(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        # Own session, default signal handling: we stop each one by its process group.
        proc = subprocess.Popen(args, env=env, cwd=ROOT, start_new_session=True)
        self.procs.append((name, proc))
        return proc

    def adopt(self, name: str, proc: subprocess.Popen[bytes]) -> None:
        self.procs.append((name, proc))

    def stop(self) -> None:
        for name, proc in reversed(self.procs):
            if proc.poll() is not None:
                continue
            print(f"make run: stopping {name} (pid {proc.pid})", flush=True)
            if name == "dagster":
                stop_dagster(proc)
                continue
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            except ProcessLookupError:
                pass


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


def start(stack: Stack) -> None:
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
    env = dict(os.environ)
    env.update({name: str(port) for name, port in ports.items()})
    env["DATA_DIR"] = str(data_dir)
    if embedded:
        password = _warehouse_password(data_dir)
        env["WAREHOUSE_PASSWORD"] = env["CLICKHOUSE_PASSWORD"] = password
        warehouse_args = ["--data-dir", str(data_dir / "warehouse"), "--host", "127.0.0.1"]
        warehouse_args += ["--port", str(ports["WAREHOUSE_PORT"])]
        warehouse = stack.spawn("warehouse", [str(BIN / "cost-warehouse"), *warehouse_args], env)
        ping = f"http://127.0.0.1:{ports['WAREHOUSE_PORT']}/ping"
        _wait_until("the warehouse", _http_ok(ping), warehouse)
    subprocess.run([str(BIN / "cost-migrate")], env=env, check=True)

    if "CUSTOMERS_FILE" not in env:
        customers_file = data_dir / "customers.yaml"
        customers_file.unlink(missing_ok=True)
        sandbox = stack.spawn("sandbox", [str(BIN / "cost-sandbox")], env)
        _wait_until("the provider sandbox", customers_file.exists, sandbox)
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
    stack.adopt(
        "dagster", start_dagster(dagster_home, ports["DAGSTER_PORT"], ROOT / "workspace.yaml", env)
    )

    api_url = f"http://127.0.0.1:{ports['API_PORT']}"
    api = stack.spawn("api", [str(BIN / "cost-api"), "--port", str(ports["API_PORT"])], env)
    _wait_until("the API", _http_ok(f"{api_url}/openapi.json"), api)

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
Ctrl-C stops everything.""",
        flush=True,
    )


def main() -> int:
    stack = Stack()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        start(stack)
        while all(proc.poll() is None for _, proc in stack.procs):
            time.sleep(0.5)
        dead = [name for name, proc in stack.procs if proc.poll() is not None]
        print(f"make run: {', '.join(dead)} stopped unexpectedly; stopping the rest", flush=True)
        return 1
    except KeyboardInterrupt:
        return 0
    except (StackError, DagsterStartError, subprocess.CalledProcessError) as exc:
        print(f"make run: {exc}", file=sys.stderr, flush=True)
        return 2
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
