"""Test helpers shared by the test packages: start the embedded warehouse endpoint as a real
OS process (exactly as production runs it) and stop or kill it by its PID; give a test a database
of its own on it."""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
_READY_RE = re.compile(r"serving ClickHouse HTTP on http://(?P<host>[^\s]+):(?P<port>\d+) ")


@dataclass
class WarehouseProcess:
    """A running `cost-warehouse` process."""

    host: str
    port: int
    data_dir: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    password: str | None = None
    ready_line: str = ""

    @property
    def pid(self) -> int:
        """OS process id of the endpoint."""
        return self.process.pid

    @property
    def url(self) -> str:
        """Base URL of the endpoint."""
        return f"http://{self.host}:{self.port}"

    def client(self, **kwargs: Any) -> Any:
        """A clickhouse-connect client for this endpoint (keyword arguments override defaults)."""
        import clickhouse_connect

        options: dict[str, Any] = {"host": self.host, "port": self.port}
        if self.password:
            options["password"] = self.password
        options.update(kwargs)
        return clickhouse_connect.get_client(**options)

    def log(self) -> str:
        """What the process wrote to stderr so far."""
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, wait for a clean exit (SIGKILL after timeout); returns the exit code.
        The log file is removed after a clean exit and kept (see .log_path) otherwise."""
        if self.process.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.process.wait()
        if self.process.returncode == 0:
            self.log_path.unlink(missing_ok=True)
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL: no shutdown at all, like a crash or an OOM kill."""
        if self.process.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
            self.process.wait()


def warehouse_command(data_dir: str | Path, port: int, host: str = "127.0.0.1") -> list[str]:
    """The command line that starts the endpoint with this interpreter."""
    return [
        sys.executable,
        "-m",
        "cost_local.warehouse.server",
        "--data-dir",
        str(data_dir),
        "--host",
        host,
        "--port",
        str(port),
    ]


def warehouse_env(password: str | None = None) -> dict[str, str]:
    """Environment for a child process: the repo importable, the password (if any) in the
    variable the endpoint reads by default."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.pop("WAREHOUSE_PASSWORD", None)
    if password:
        env["WAREHOUSE_PASSWORD"] = password
    return env


def start_warehouse(
    data_dir: str | Path,
    port: int | None = None,
    *,
    host: str = "127.0.0.1",
    password: str | None = None,
    timeout: float = 30.0,
) -> WarehouseProcess:
    """Start `cost-warehouse` on data_dir and wait until it answers /ping.

    port=None lets the endpoint pick a free port (reported in its ready line), so parallel
    test runs never race for one. Raises RuntimeError with the process log if it fails."""
    with tempfile.NamedTemporaryFile(
        prefix="cost-warehouse-", suffix=".log", delete=False
    ) as log_file:
        process = subprocess.Popen(
            warehouse_command(data_dir, port or 0, host),
            stdout=subprocess.PIPE,
            stderr=log_file,
            env=warehouse_env(password),
            cwd=REPO_ROOT,
            start_new_session=True,  # default signal handlers; no Ctrl-C from the test runner
        )
    log_path = Path(log_file.name)
    deadline = time.monotonic() + timeout
    line = _read_ready_line(process, deadline)
    match = _READY_RE.search(line)
    if match is None:
        if process.poll() is None:
            process.kill()
        process.wait()
        if process.stdout:
            process.stdout.close()
        raise RuntimeError(
            f"cost-warehouse did not start (exit {process.returncode}): "
            f"{line!r}\n{log_path.read_text(errors='replace')}"
        )
    # Keep reading stdout into the log: a full pipe would block the endpoint.
    threading.Thread(target=_copy_stdout, args=(process, log_path), daemon=True).start()
    wh = WarehouseProcess(
        host=match["host"],
        port=int(match["port"]),
        data_dir=Path(data_dir),
        process=process,
        log_path=log_path,
        password=password,
        ready_line=line,
    )
    while not _pings(wh.url):
        if time.monotonic() > deadline or process.poll() is not None:
            wh.kill()
            raise RuntimeError(f"cost-warehouse never answered /ping:\n{wh.log()}")
        time.sleep(0.05)
    return wh


def _copy_stdout(process: subprocess.Popen[bytes], log_path: Path) -> None:
    assert process.stdout is not None
    with process.stdout, log_path.open("ab") as log:  # EOF comes when the process exits
        while chunk := os.read(process.stdout.fileno(), 65536):
            log.write(chunk)
            log.flush()


def _read_ready_line(process: subprocess.Popen[bytes], deadline: float) -> str:
    assert process.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    buffer = b""
    try:
        while b"\n" not in buffer and time.monotonic() < deadline:
            if not selector.select(timeout=max(0.0, deadline - time.monotonic())):
                break
            chunk = os.read(process.stdout.fileno(), 4096)
            if not chunk:
                break
            buffer += chunk
    finally:
        selector.close()
    return buffer.decode(errors="replace").strip()


_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, never proxied


def _pings(url: str) -> bool:
    try:
        with _DIRECT.open(f"{url}/ping", timeout=2) as response:
            return bool(response.read() == b"Ok.\n")
    except OSError:
        return False


@contextmanager
def own_database(warehouse: WarehouseProcess, prefix: str = "test") -> Iterator[str]:
    """A new, empty database with a unique name on `warehouse`, dropped afterwards: tests that
    share one endpoint never see each other's tables or rows."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = warehouse.client()
    try:
        admin.command("CREATE DATABASE {name:Identifier}", parameters={"name": name})
        yield name
    finally:
        admin.command("DROP DATABASE IF EXISTS {name:Identifier}", parameters={"name": name})
        admin.close()
