"""A child process for the supervisor's tests: answers HTTP 200 on 127.0.0.1:PORT, and on SIGTERM
takes STOP_DELAY seconds before it exits, like a server finishing its requests."""

from __future__ import annotations

import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any


class Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: Any) -> None:
        pass


def main() -> None:
    port, stop_delay = int(sys.argv[1]), float(sys.argv[2])
    server = ThreadingHTTPServer(("127.0.0.1", port), Ok)
    stopping = threading.Event()

    def on_term(_signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_term)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    while not stopping.wait(0.1):
        pass
    time.sleep(stop_delay)
    server.shutdown()


if __name__ == "__main__":
    main()
