"""A local Dagster (webserver + daemon) for `make run` and the tests: config, start, stop."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

from cost_pipelines.logs import DAGSTER_PYTHON_LOGS
from cost_pipelines.runs import PAIR_TAG

READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0


class DagsterStartError(RuntimeError):
    """`dagster dev` exited or did not answer in time; the message says which."""


def instance_config(
    home: Path, max_concurrent_runs: int = 4, dequeue_interval_s: int = 2
) -> dict[str, object]:
    """dagster.yaml: a queued run coordinator with per-pair limits, sqlite storage under home."""
    return {
        "run_coordinator": {
            "module": "dagster._core.run_coordinator",
            "class": "QueuedRunCoordinator",
            "config": {
                "max_concurrent_runs": max_concurrent_runs,
                "dequeue_interval_seconds": dequeue_interval_s,
                "tag_concurrency_limits": [
                    {"key": PAIR_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 1}
                ],
            },
        },
        "storage": {"sqlite": {"base_dir": str(home / "storage")}},
        "local_artifact_storage": {
            "module": "dagster._core.storage.root",
            "class": "LocalArtifactStorage",
            "config": {"base_dir": str(home)},
        },
        "python_logs": DAGSTER_PYTHON_LOGS,  # a run's records in LOG_FORMAT too
        "telemetry": {"enabled": False},
        "nux": {"enabled": False},
    }


def write_dagster_home(
    home: Path, max_concurrent_runs: int = 4, dequeue_interval_s: int = 2
) -> Path:
    """Create DAGSTER_HOME and its dagster.yaml (rewritten every start: settings follow code)."""
    home = home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = instance_config(home, max_concurrent_runs, dequeue_interval_s)
    path = home / "dagster.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _default_signals() -> None:
    # A parent started with `&` hands down SIGINT/SIGTERM as ignored; dagster dev then never stops.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def dagster_command(workspace: Path, port: int, host: str = "127.0.0.1") -> list[str]:
    """`dagster dev` (webserver + daemon) for this workspace on host:port (loopback by default:
    Dagster's webserver has no authentication of its own)."""
    dagster = Path(sys.executable).parent / "dagster"
    return [str(dagster), "dev", "-w", str(workspace), "-h", host, "-p", str(port)]


def start_dagster(
    home: Path,
    port: int,
    workspace: Path,
    env: dict[str, str],
    log_file: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start `dagster dev` (webserver + daemon) on 127.0.0.1:port in its own session and wait
    until its webserver answers /server_info. Raises DagsterStartError otherwise (and stops it)."""
    home = home.resolve()
    child_env = {**env, "DAGSTER_HOME": str(home)}
    args = dagster_command(workspace, port)
    output = open(log_file, "ab") if log_file else None  # noqa: SIM115 (child owns it)
    try:
        proc = subprocess.Popen(
            args,
            env=child_env,
            cwd=workspace.parent,
            start_new_session=True,
            preexec_fn=_default_signals,
            stdout=output,
            stderr=subprocess.STDOUT if output else None,
        )
    finally:
        if output:
            output.close()
    try:
        _wait_ready(proc, f"http://127.0.0.1:{port}/server_info")
    except BaseException:
        stop_dagster(proc)
        raise
    return proc


def _wait_ready(proc: subprocess.Popen[bytes], url: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DagsterStartError(f"dagster dev exited with code {proc.returncode} on start")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise DagsterStartError(f"dagster dev did not answer {url} within {READY_TIMEOUT_S:.0f} s")


def stop_dagster(proc: subprocess.Popen[bytes], timeout_s: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM the process group `start_dagster` created, SIGKILL it if it outlives timeout_s."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout_s)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        # Still alive: the whole group goes (webserver, daemon, code server, run workers).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
