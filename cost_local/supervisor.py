"""The process supervisor behind `make run`: starts components in order, restarts one that dies
(with backoff) while the others keep serving, and stops them all exactly once, newest first.

Signal safety: the handlers only record that a stop was asked for. Nothing is raised from a
handler, so a second SIGTERM (make forwards the one the group already got) or a Ctrl-C during
the stop cannot cut the stop short; the stop itself is idempotent."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any

import httpx

TICK_S = 0.25
READY_TIMEOUT_S = 300.0  # Dagster alone takes minutes on a busy 2-core machine
FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 30.0
STABLE_AFTER_S = 60.0  # up this long: the next crash starts the backoff from the beginning
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class StartError(RuntimeError):
    """A component could not start; the message says which and why."""


class StopRequested(Exception):
    """A stop signal arrived while the stack was starting."""


def http_ok(url: str) -> Callable[[], bool]:
    """A readiness check: the URL answers 200."""

    def check() -> bool:
        try:
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    return check


def _default_signals() -> None:
    # Ignored signals survive exec: a stack started with `&` would hand down SIGINT/SIGTERM as
    # ignored and its children (dagster dev above all) would never stop.
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_DFL)


@dataclass
class Component:
    """One long-running process of the stack and how to tell it is ready."""

    name: str
    args: list[str]
    env: dict[str, str]
    ready: Callable[[], bool]
    cwd: Path | None = None
    stop_timeout_s: float = 10.0
    output: IO[bytes] | None = None
    # State kept by the supervisor.
    proc: subprocess.Popen[bytes] | None = None
    state: str = "new"  # starting, up, backoff, failed, stopped
    restarts: int = 0
    failures_in_a_row: int = 0
    last_exit_code: int | None = None
    started_at: float = 0.0
    ready_by: float = 0.0
    retry_at: float = 0.0

    def public(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "pid": self.proc.pid if self.proc and self.state in ("starting", "up") else None,
            "restarts": self.restarts,
            "last_exit_code": self.last_exit_code,
        }


def stop_group(proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    """SIGTERM the process group the child leads, SIGKILL what is left after timeout_s. Also when
    the leader already exited: its children (a webserver, a run worker) may still hold a port."""
    deadline = time.monotonic() + timeout_s
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=timeout_s)
    while _group_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Supervisor:
    """Owns the stack's processes. `install_signal_handlers()` first, `stop()` always last."""

    def __init__(
        self,
        status_file: Path | None = None,
        log: Callable[[str], None] | None = None,
        first_backoff_s: float = FIRST_BACKOFF_S,
        max_backoff_s: float = MAX_BACKOFF_S,
    ) -> None:
        self.components: list[Component] = []
        self.status_file = status_file
        self._log = log or (lambda line: print(f"make run: {line}", flush=True))
        self.first_backoff_s = first_backoff_s
        self.max_backoff_s = max_backoff_s
        self.stop_signal: int | None = None
        self._stopped = False

    # -- signals --------------------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        # Only record it: raising here could interrupt a stop already under way.
        if self.stop_signal is None:
            self.stop_signal = signum

    @property
    def stop_requested(self) -> bool:
        return self.stop_signal is not None

    def sleep(self, seconds: float) -> None:
        """Sleep, but raise StopRequested as soon as a stop is asked for."""
        deadline = time.monotonic() + seconds
        while not self.stop_requested:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(TICK_S, left))
        raise StopRequested

    # -- starting -------------------------------------------------------------------------------

    def _spawn(self, component: Component) -> None:
        component.proc = subprocess.Popen(
            component.args,
            env=component.env,
            cwd=component.cwd,
            start_new_session=True,  # own group: we stop it, not the terminal's Ctrl-C
            preexec_fn=_default_signals,
            stdout=component.output,
            stderr=subprocess.STDOUT if component.output else None,
        )
        component.state = "starting"
        component.started_at = time.monotonic()
        component.ready_by = component.started_at + READY_TIMEOUT_S
        self._write_status()
        self._log(f"started {component.name} (pid {component.proc.pid})")

    def start(self, component: Component) -> Component:
        """Start a component and wait until it is ready (supervised from then on). StartError if
        it exits or is not ready in time; StopRequested if a stop signal arrives meanwhile."""
        self.components.append(component)
        self._spawn(component)
        while True:
            self.poll()
            if component.state == "up":
                return component
            if component.state != "starting":
                code = component.last_exit_code
                raise StartError(f"{component.name} exited with code {code} while starting")
            if time.monotonic() > component.ready_by:
                raise StartError(
                    f"{component.name} did not become ready within {READY_TIMEOUT_S:.0f} s"
                )
            self.sleep(TICK_S)

    def run_once(self, name: str, args: list[str], env: dict[str, str]) -> None:
        """A one-shot step (a migration) in its own session; StartError if it fails."""
        proc = subprocess.Popen(args, env=env, start_new_session=True, preexec_fn=_default_signals)
        try:
            while proc.poll() is None:
                self.sleep(TICK_S)
        finally:
            if proc.poll() is None:
                stop_group(proc, 10.0)
        if proc.returncode != 0:
            raise StartError(f"{name} failed with code {proc.returncode}")

    # -- supervising ----------------------------------------------------------------------------

    def poll(self) -> None:
        """One supervision step: notice exits, readiness, and restarts that are due."""
        now = time.monotonic()
        for component in self.components:
            if component.state in ("starting", "up"):
                self._check(component, now)
            elif component.state == "backoff" and now >= component.retry_at:
                component.restarts += 1
                self._spawn(component)

    def _check(self, component: Component, now: float) -> None:
        assert component.proc is not None
        code = component.proc.poll()
        if code is not None:
            self._exited(component, code, now)
        elif component.state == "up":
            if now - component.started_at > STABLE_AFTER_S:
                component.failures_in_a_row = 0
        elif component.ready():
            component.state = "up"
            self._write_status()
            if component.restarts:
                self._log(f"{component.name} is up again (restart {component.restarts})")
            else:
                self._log(f"{component.name} is up ({now - component.started_at:.0f} s)")
        elif component.restarts and now > component.ready_by:
            self._log(f"{component.name} did not become ready in time")
            stop_group(component.proc, component.stop_timeout_s)
            self._exited(component, component.proc.returncode, now)

    def _exited(self, component: Component, code: int, now: float) -> None:
        assert component.proc is not None
        stop_group(component.proc, 5.0)  # what it left behind goes too
        component.last_exit_code = code
        was_up = component.state == "up"
        component.failures_in_a_row += 1
        if not was_up and component.restarts == 0:
            component.state = "failed"  # never came up: start() reports it
            self._write_status()
            return
        delay = min(
            self.max_backoff_s, self.first_backoff_s * 2 ** (component.failures_in_a_row - 1)
        )
        component.state = "backoff"
        component.retry_at = now + delay
        self._write_status()
        self._log(
            f"{component.name} exited with code {code}; the others keep running; "
            f"restarting it in {delay:g} s"
        )

    def serve(self) -> int:
        """Supervise until a stop signal arrives; returns the exit code of `make run`."""
        while not self.stop_requested:
            self.poll()
            time.sleep(TICK_S)
        return 0

    # -- stopping -------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop every component, newest first. Idempotent; signals meanwhile change nothing."""
        if self._stopped:
            return
        self._stopped = True
        if self.stop_signal is None:
            self.stop_signal = signal.SIGTERM  # no restarts from here on
        for component in reversed(self.components):
            if component.proc is None or component.state == "stopped":
                continue
            if component.proc.poll() is None:
                self._log(f"stopping {component.name} (pid {component.proc.pid})")
            stop_group(component.proc, component.stop_timeout_s)
            component.state = "stopped"
        self._write_status()
        self._log("stopped")

    def _write_status(self) -> None:
        """The status file, written before the log line of the change it records: whoever reads
        the line finds the new state in the file."""
        if self.status_file is None:
            return
        document = {c.name: c.public() for c in self.components}
        partial = self.status_file.with_suffix(".tmp")
        partial.write_text(json.dumps(document, indent=1))
        partial.chmod(0o600)
        os.replace(partial, self.status_file)


def supervise(
    start: Callable[[Supervisor], None],
    stack: Supervisor | None = None,
    errors: tuple[type[Exception], ...] = (),
) -> int:
    """Run a stack until a stop signal: `start` starts its components, then they are supervised;
    every path out stops them. 0 after a stop signal, 2 when the stack cannot start."""
    stack = stack or Supervisor()
    stack.install_signal_handlers()  # before anything starts: no signal finds us unprepared
    try:
        start(stack)
        return stack.serve()
    except StopRequested:
        return 0
    except Exception as exc:
        if not isinstance(exc, (StartError, *errors)):
            raise
        if stack.stop_requested:
            return 0  # a step that failed because we are stopping
        print(f"make run: {exc}", file=sys.stderr, flush=True)
        return 2
    finally:
        stack.stop()
