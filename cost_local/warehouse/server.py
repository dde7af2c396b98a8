"""cost-warehouse: one local process owns the chDB store and speaks the ClickHouse HTTP interface,
so every other process (Dagster, the API) uses clickhouse-connect exactly as against a server."""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import os
import signal
import socket
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from cost_local.warehouse.engine import Engine, EngineError
from cost_local.warehouse.http_codec import RequestBody
from cost_local.warehouse.protocol import (
    OK_REPLY,
    TEXT,
    Credentials,
    Exchange,
    Reply,
    authenticate,
)
from cost_pipelines.warehouse.connection import is_loopback

logger = logging.getLogger("cost_local.warehouse.server")

READY_LINE = (
    "cost-warehouse: serving ClickHouse HTTP on http://{host}:{port} "
    "(data {data_dir}, engine {version})"
)
SHUTDOWN_GRACE_S = 1.5


class PortInUseError(OSError):
    """The port is taken by another process."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(errno.EADDRINUSE, f"port {port} on {host} is already in use")

    def __str__(self) -> str:
        return str(self.strerror)


class InsecureBindError(ValueError):
    """Refusal to expose the warehouse beyond loopback without a password."""


class WarehouseServer(ThreadingHTTPServer):
    """The HTTP server: a thread per connection, one engine shared by all of them."""

    daemon_threads = True
    request_queue_size = 128  # bursts of new connections from several processes
    engine: Engine

    def __init__(self, address: tuple[str, int], credentials: Credentials) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.credentials = credentials
        self.display_name = socket.gethostname()
        self._open_sockets: set[socket.socket] = set()
        self._sockets_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        super().__init__(address, WarehouseHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Track open connections so shutdown can close idle keep-alive ones."""
        with self._sockets_lock:
            self._open_sockets.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        """Forget a connection once its handler is done with it."""
        with self._sockets_lock:
            self._open_sockets.discard(request)
        super().shutdown_request(request)

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, name="cost-warehouse"
        )
        self._thread.daemon = True
        self._thread.start()

    def shutdown(self) -> None:
        """Stop accepting, let running statements finish (briefly), release the data directory."""
        if self._thread is not None and self._thread.is_alive():
            super().shutdown()
        self.server_close()
        if not self.engine.close(SHUTDOWN_GRACE_S):
            logger.warning("statements still running at shutdown; the data directory stays locked")
        with self._sockets_lock:
            sockets = list(self._open_sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class WarehouseHandler(BaseHTTPRequestHandler):
    """One HTTP request: authenticate, decode, run on the engine, answer as ClickHouse does."""

    server: WarehouseServer
    protocol_version = "HTTP/1.1"
    timeout = 120  # idle keep-alive connections are dropped after this (clients reconnect)
    # Small answers go out at once: with Nagle's algorithm each reply waited ~40 ms for the
    # client's delayed ACK.
    disable_nagle_algorithm = True

    def version_string(self) -> str:
        """The Server header."""
        return f"cost-warehouse (chDB {self.server.engine.version})"

    def log_message(self, format: str, *args: Any) -> None:
        """No access log: errors are logged where they are handled."""

    def do_GET(self) -> None:
        """Read-only queries, /ping."""
        self._dispatch("GET")

    def do_POST(self) -> None:
        """Any statement; INSERT data in the body."""
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        body = RequestBody(
            self.rfile,
            self.headers.get("Transfer-Encoding", ""),
            self.headers.get("Content-Length"),
        )
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        exchange = Exchange(
            engine=self.server.engine,
            display_name=self.server.display_name,
            method=method,
            params=params,
            headers=self.headers,
            query_id=params.get("query_id") or str(uuid.uuid4()),
        )
        try:
            if url.path == "/ping":
                reply = OK_REPLY
            elif url.path not in ("", "/"):
                text = f"There is no handle {url.path}\n\nUse / or /ping for health checks.\n"
                reply = Reply(404, text.encode(), {"Content-Type": TEXT})
            else:
                authenticate(self.server.credentials, self.headers, params)
                reply = exchange.run(body)
        except (ConnectionError, TimeoutError):
            self.close_connection = True  # the client went away mid-request
            return
        except EngineError as exc:
            reply = exchange.error(exc)
        except Exception as exc:
            logger.exception("unexpected failure in request %s", exchange.query_id)
            reply = exchange.error(
                EngineError(1001, "STD_EXCEPTION", f"{type(exc).__name__}: {exc}")
            )
        try:
            body.drain()  # the next request on this keep-alive connection starts after it
        except Exception:
            self.close_connection = True
        with contextlib.suppress(OSError):
            self._send(reply)

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(reply.body)


def serve(
    data_dir: str | Path,
    host: str = "127.0.0.1",
    port: int = 8123,
    user: str | None = None,
    password: str | None = None,
) -> WarehouseServer:
    """Open the store under data_dir and serve it on host:port from a background thread.
    Returns the server: `.server_address` is the bound address, `.shutdown()` stops it."""
    if not password and not is_loopback(host):
        raise InsecureBindError(
            f"refusing to listen on {host} without a password: anyone who can reach it could "
            "read and change all costs. Set a password (--password-env, default "
            "WAREHOUSE_PASSWORD) or bind to 127.0.0.1."
        )
    try:
        server = WarehouseServer((host, port), Credentials(user or "default", password or ""))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise PortInUseError(host, port) from exc
        raise
    try:
        server.engine = Engine(Path(data_dir))
    except BaseException:
        server.server_close()
        raise
    server.start()
    return server


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="cost-warehouse",
        description="Serve a chDB data directory over the ClickHouse HTTP interface.",
    )
    parser.add_argument("--data-dir", required=True, type=Path, help="chDB data directory")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", default=8123, type=int, help="port (0 = any free port)")
    parser.add_argument("--user", default="default", help="the user clients authenticate as")
    parser.add_argument(
        "--password-env",
        default="WAREHOUSE_PASSWORD",
        metavar="VAR",
        help="environment variable holding the password (never pass it on the command line)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Console entry point: serve until SIGTERM or SIGINT."""
    logging.basicConfig(level=logging.WARNING, format="cost-warehouse: %(levelname)s %(message)s")
    args = _parse_args(argv)
    password = os.environ.get(args.password_env) or None
    try:
        server = serve(args.data_dir, args.host, args.port, args.user, password)
    except (InsecureBindError, PortInUseError) as exc:
        print(f"cost-warehouse: {exc}", file=sys.stderr)
        return 2
    except EngineError as exc:
        print(f"cost-warehouse: cannot open {args.data_dir}: {exc.message}", file=sys.stderr)
        return 1
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    host, port = server.server_address[:2]
    print(
        READY_LINE.format(
            host=host, port=port, data_dir=server.engine.data_dir, version=server.engine.version
        ),
        flush=True,
    )
    while not stop.wait(0.5):
        pass
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
