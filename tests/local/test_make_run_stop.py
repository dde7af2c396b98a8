"""`make run` stops, every time, however it is told to: SIGTERM to its whole process group (make
forwards it, so the runner gets it twice), SIGTERM to make alone, and Ctrl-C (SIGINT to the
group). Real stacks, one after another per way on the same ports and data: a start that finds
a port still bound, or any process of the previous stack still alive, fails the test. Four per
way in the suite (a start takes 30-60 s on 2 cores); `MAKE_RUN_STOP_TRIES=10` for the full ten.
The supervisor's own signal handling is tried ten times per way in tests/local/test_supervisor.py
with real child processes."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.support.ports import free_ports
from tests.support.processes import REPO_ROOT

pytestmark = pytest.mark.slow

TRIES = int(os.environ.get("MAKE_RUN_STOP_TRIES", "4"))
PORT_VARIABLES = (
    "WAREHOUSE_PORT",
    "DAGSTER_PORT",
    "API_PORT",
    "SANDBOX_AWS_PORT",
    "SANDBOX_AZURE_PORT",
    "SANDBOX_GCP_PORT",
    "SANDBOX_VULTR_PORT",
    "SANDBOX_ECB_PORT",
)
MARKER = "COST_STACK_TEST_MARKER"


def processes_with(marker: str) -> list[int]:
    """Live processes whose environment carries this marker (every descendant inherits it)."""
    found = []
    needle = f"{MARKER}={marker}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue  # gone meanwhile, or not ours
    return found


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)


def _as_a_terminal_starts_it() -> None:
    """In the child before exec: the stop signals at their defaults and unblocked, as a shell at
    a terminal starts a command. Ignored signals survive exec, and this test process may ignore
    SIGTERM: a suite started in the background ignores SIGINT, and Dagster code run in-process
    by earlier tests maps SIGTERM to SIGINT's handler (dagster._utils.interrupts), so make would
    inherit SIGTERM ignored and never forward it."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def make_run(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`make run` as a user types it, with this interpreter's venv (already installed: `-o`)."""
    venv = Path(sys.prefix)
    with log.open("ab") as output:
        return subprocess.Popen(
            ["make", "--no-print-directory", "-o", f"{venv}/.installed", "run", f"VENV={venv}"],
            cwd=REPO_ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # make leads a process group, as in a terminal
            preexec_fn=_as_a_terminal_starts_it,  # signal calls only: safe between fork and exec
        )


def wait_until_up(make: subprocess.Popen[bytes], log: Path, offset: int) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")[offset:]
        if "the system is up" in text:
            return
        if make.poll() is not None:
            pytest.fail(f"make run exited with {make.returncode} while starting:\n{text[-4000:]}")
        time.sleep(0.5)
    pytest.fail(f"make run did not come up:\n{log.read_text(errors='replace')[offset:][-4000:]}")


def signal_make(make: subprocess.Popen[bytes], how: str) -> None:
    if how == "group":
        os.killpg(make.pid, signal.SIGTERM)
    elif how == "make":
        os.kill(make.pid, signal.SIGTERM)
    else:  # Ctrl-C: the terminal sends SIGINT to the foreground process group
        os.killpg(make.pid, signal.SIGINT)


@pytest.mark.timeout(TRIES * 360)  # a start takes 30 s on an idle machine, minutes on a busy one
@pytest.mark.parametrize("how", ["group", "make", "ctrl-c"])
def test_make_run_stops_every_process_every_time(tmp_path: Path, how: str) -> None:
    ports = dict(zip(PORT_VARIABLES, free_ports(len(PORT_VARIABLES)), strict=True))
    marker = uuid.uuid4().hex
    env = {k: v for k, v in os.environ.items() if k not in ("CUSTOMERS_FILE", "DAGSTER_HOME")}
    env.update({name: str(port) for name, port in ports.items()})
    env.update({"DATA_DIR": str(tmp_path / "data"), MARKER: marker})
    log = tmp_path / "make-run.log"
    try:
        for attempt in range(1, TRIES + 1):
            offset = log.stat().st_size if log.exists() else 0
            make = make_run(env, log)
            wait_until_up(make, log, offset)
            signal_make(make, how)
            try:
                make.wait(timeout=120)
            except subprocess.TimeoutExpired:
                pytest.fail(f"try {attempt}: make run did not exit after the signal")
            text = log.read_text(errors="replace")[offset:]
            left = processes_with(marker)
            assert left == [], f"try {attempt} ({how}): still running {left}:\n{text[-3000:]}"
            for name, port in ports.items():
                with socket.socket() as probe:
                    bound = probe.connect_ex(("127.0.0.1", port)) == 0
                assert not bound, f"try {attempt} ({how}): {name} {port} still bound"
            assert "make run: stopped" in text, text[-3000:]
    finally:
        for pid in processes_with(marker):  # only what this test started
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
