"""A stack of real child processes under the same supervisor and entry logic as `make run`
(cost_local.supervisor.supervise), for tests that signal it: `python -m tests.support.supervised
STATUS_FILE STOP_DELAY PORT...` starts one slow_server per port and prints "up" when all answer."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from cost_local.supervisor import Component, Supervisor, http_ok, supervise


def main() -> int:
    status_file, stop_delay, *ports = sys.argv[1:]
    stack = Supervisor(status_file=Path(status_file), first_backoff_s=0.2, max_backoff_s=1.0)

    def start(stack: Supervisor) -> None:
        for port in ports:
            args = [sys.executable, "-m", "tests.support.slow_server", port, stop_delay]
            url = f"http://127.0.0.1:{port}/"
            stack.start(Component(f"server-{port}", args, dict(os.environ), http_ok(url)))
        print("make run: up", flush=True)

    return supervise(start, stack)


if __name__ == "__main__":
    sys.exit(main())
