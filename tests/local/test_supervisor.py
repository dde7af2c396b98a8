"""The supervisor behind `make run`, with real child processes: every way of being told to stop
stops every child (also a second signal in the middle of the stop), and a child that dies is
restarted with growing backoff while the others keep serving."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cost_local.supervisor import Component, Supervisor, http_ok
from tests.support.ports import free_ports
from tests.support.processes import REPO_ROOT

TRIES = 10


class Driver:
    """`python -m tests.support.supervised`: the same supervise() as `make run`."""

    def __init__(self, tmp_path: Path, count: int, stop_delay: float) -> None:
        self.ports = free_ports(count)
        tmp_path.mkdir(parents=True, exist_ok=True)
        self.status_file = tmp_path / "status.json"
        self.log_path = tmp_path / "driver.log"
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        args = [sys.executable, "-m", "tests.support.supervised", str(self.status_file)]
        args += [str(stop_delay), *map(str, self.ports)]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                args,
                cwd=REPO_ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, pattern: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.log()):
            assert self.proc.poll() is None, self.log()
            assert time.monotonic() < deadline, f"no {pattern!r} in:\n{self.log()}"
            time.sleep(0.05)

    def child_pids(self) -> list[int]:
        return [int(pid) for pid in re.findall(r"started server-\d+ \(pid (\d+)\)", self.log())]

    def status(self) -> dict[str, dict[str, object]]:
        return json.loads(self.status_file.read_text())  # type: ignore[no-any-return]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def assert_all_stopped(driver: Driver) -> None:
    assert driver.proc.wait(timeout=60) == 0, driver.log()
    assert [pid for pid in driver.child_pids() if alive(pid)] == [], driver.log()
    for port in driver.ports:
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0, f"{port} still bound"
    assert "make run: stopped" in driver.log()


@pytest.mark.parametrize(
    "signals",
    [
        [signal.SIGTERM, signal.SIGTERM],  # SIGTERM to make's group: make forwards it again
        [signal.SIGINT, signal.SIGINT, signal.SIGTERM],  # Ctrl-C, impatient
        [signal.SIGTERM],
    ],
    ids=["sigterm-twice", "ctrl-c-then-more", "sigterm-once"],
)
def test_a_stop_signal_stops_every_child_even_when_more_arrive_during_the_stop(
    tmp_path: Path, signals: list[signal.Signals]
) -> None:
    for attempt in range(TRIES):
        driver = Driver(tmp_path / str(attempt), count=3, stop_delay=0.5)
        driver.wait_for("make run: up")
        for signum in signals:
            os.killpg(driver.proc.pid, signum)
            time.sleep(0.2)  # the next one lands while the children are still stopping
        assert_all_stopped(driver)


def test_a_stop_signal_while_starting_stops_what_already_started(tmp_path: Path) -> None:
    for attempt in range(TRIES):
        driver = Driver(tmp_path / str(attempt), count=3, stop_delay=0.2)
        driver.wait_for(r"started server-\d+ \(pid \d+\)")
        os.killpg(driver.proc.pid, signal.SIGTERM)
        os.killpg(driver.proc.pid, signal.SIGTERM)
        assert_all_stopped(driver)


def test_a_killed_child_is_restarted_and_the_others_keep_serving(tmp_path: Path) -> None:
    driver = Driver(tmp_path, count=2, stop_delay=0)
    try:
        driver.wait_for("make run: up")
        victim, bystander = driver.ports
        first = driver.status()
        os.kill(int(first[f"server-{victim}"]["pid"]), signal.SIGKILL)  # type: ignore[call-overload]
        driver.wait_for(rf"server-{victim} is up again \(restart 1\)")
        assert re.search(
            rf"server-{victim} exited with code -9; the others keep running", driver.log()
        )
        now = driver.status()
        assert now[f"server-{victim}"]["state"] == "up"
        assert now[f"server-{victim}"]["restarts"] == 1
        assert now[f"server-{victim}"]["last_exit_code"] == -9
        assert now[f"server-{victim}"]["pid"] != first[f"server-{victim}"]["pid"]
        assert now[f"server-{bystander}"] == first[f"server-{bystander}"], "the other kept running"
        assert f"started server-{bystander}" in driver.log()
        assert driver.log().count(f"started server-{bystander}") == 1
    finally:
        os.kill(driver.proc.pid, signal.SIGTERM)
    assert_all_stopped(driver)


def test_a_child_that_keeps_dying_is_restarted_with_doubling_backoff_up_to_the_cap(
    tmp_path: Path,
) -> None:
    lines: list[str] = []
    stack = Supervisor(log=lines.append, first_backoff_s=0.05, max_backoff_s=0.2)
    crashing = Component(
        "crashing",
        [sys.executable, "-c", "import time; time.sleep(0.1)"],
        dict(os.environ),
        ready=lambda: True,
    )
    try:
        stack.start(crashing)
        deadline = time.monotonic() + 60
        while crashing.restarts < 5 and time.monotonic() < deadline:
            stack.poll()
            time.sleep(0.01)
    finally:
        stack.stop()
    delays = [float(d) for d in re.findall(r"restarting it in ([\d.]+) s", "\n".join(lines))]
    assert delays[:5] == [0.05, 0.1, 0.2, 0.2, 0.2]
    assert crashing.state == "stopped"
    assert crashing.proc is not None and crashing.proc.poll() is not None


def test_stop_is_idempotent(tmp_path: Path) -> None:
    lines: list[str] = []
    stack = Supervisor(log=lines.append)
    [port] = free_ports(1)
    args = [sys.executable, "-m", "tests.support.slow_server", str(port), "0"]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    server = stack.start(Component("server", args, env, http_ok(f"http://127.0.0.1:{port}/")))
    stack.stop()
    stack.stop()
    assert server.proc is not None and server.proc.poll() is not None
    assert lines.count("stopped") == 1
