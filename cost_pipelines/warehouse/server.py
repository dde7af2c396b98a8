"""cost-warehouse: one local process owns the chDB store and speaks the ClickHouse HTTP interface,
so every other process (Dagster, the API) uses clickhouse-connect exactly as against a server."""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import errno
import hmac
import ipaddress
import itertools
import json
import logging
import os
import signal
import socket
import sys
import threading
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from cost_pipelines.warehouse.chdb_engine import (
    HTTP_LEVEL_SETTINGS,
    Engine,
    EngineError,
    QueryStats,
    external_table,
)
from cost_pipelines.warehouse.http_codec import (
    NEED_MORE,
    InsertSplit,
    RequestBody,
    compress,
    content_type,
    decode_body,
    parse_multipart,
    pick_response_encoding,
    split_insert,
    statement_shape,
)

logger = logging.getLogger("cost_pipelines.warehouse.server")

READY_LINE = (
    "cost-warehouse: serving ClickHouse HTTP on http://{host}:{port} "
    "(data {data_dir}, engine {version})"
)
# URL parameters the ClickHouse HTTP handler consumes itself; everything else that is not a
# `param_` binding or an external table's description is a query setting.
RESERVED_PARAMS = frozenset(
    {
        "query",
        "database",
        "default_format",
        "user",
        "password",
        "quota_key",
        "query_id",
        "stacktrace",
        "role",
        "buffer_size",
        "wait_end_of_query",
        "session_id",
        "session_timeout",
        "session_check",
        "client_protocol_version",
        "close_session",
        "compress",
        "decompress",
    }
)
MAX_STATEMENT_HEAD = 1 << 20  # an INSERT's statement must start within the first MiB
SHUTDOWN_GRACE_S = 1.5


class PortInUseError(OSError):
    """The port is taken by another process."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(errno.EADDRINUSE, f"port {port} on {host} is already in use")


class InsecureBindError(ValueError):
    """Refusal to expose the warehouse beyond loopback without a password."""


@dataclass(frozen=True)
class Credentials:
    """The one user this endpoint knows: ClickHouse's `default`, empty password unless set."""

    user: str = "default"
    password: str = ""

    def accepts(self, user: str, password: str) -> bool:
        """Constant-time comparison of both fields."""
        user_ok = hmac.compare_digest(user.encode(), self.user.encode())
        password_ok = hmac.compare_digest(password.encode(), self.password.encode())
        return user_ok and password_ok


def is_loopback(host: str) -> bool:
    """True if every address `host` resolves to is a loopback address."""
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


def _truthy(value: str) -> bool:
    return value.strip().lower() not in ("", "0", "false")


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
        query_id = params.get("query_id") or str(uuid.uuid4())
        try:
            if url.path == "/ping":
                body.drain()
                self._send(200, b"Ok.\n", {"Content-Type": "text/html; charset=UTF-8"})
            elif url.path not in ("", "/"):
                body.drain()
                text = f"There is no handle {url.path}\n\nUse / or /ping for health checks.\n"
                self._send(404, text.encode(), {"Content-Type": "text/plain; charset=UTF-8"})
            else:
                self._authenticate(params)
                self._run(method, params, body, query_id)
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        except EngineError as exc:
            if exc.name == "READONLY" and method == "GET":
                exc.message += (
                    ". For queries over HTTP, method GET implies readonly. "
                    "You should use method POST for modifying queries"
                )
            self._fail(exc, body, query_id)
        except Exception as exc:
            logger.exception("unexpected failure in request %s", query_id)
            self._fail(
                EngineError(1001, "STD_EXCEPTION", f"{type(exc).__name__}: {exc}"), body, query_id
            )

    def _credentials(self, params: dict[str, str]) -> tuple[str, str]:
        """User and password from X-ClickHouse-* headers, basic auth, or URL parameters."""
        if "X-ClickHouse-User" in self.headers or "X-ClickHouse-Key" in self.headers:
            return self.headers.get("X-ClickHouse-User", "default"), self.headers.get(
                "X-ClickHouse-Key", ""
            )
        authorization = self.headers.get("Authorization", "")
        if authorization[:6].lower() == "basic ":
            try:
                user, _, password = base64.b64decode(authorization[6:]).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return "", "\0"
            return user, password
        if authorization:
            return "", "\0"  # bearer tokens and other schemes are not supported here
        return params.get("user", "default"), params.get("password", "")

    def _authenticate(self, params: dict[str, str]) -> None:
        user, password = self._credentials(params)
        if not self.server.credentials.accepts(user, password):
            raise EngineError(
                516,
                "AUTHENTICATION_FAILED",
                f"{user}: Authentication failed: password is incorrect, "
                "or there is no user with such name.",
            )

    def _run(self, method: str, params: dict[str, str], body: RequestBody, query_id: str) -> None:
        engine = self.server.engine
        for flag in ("compress", "decompress"):
            if _truthy(params.get(flag, "")):
                raise EngineError(
                    48,
                    "NOT_IMPLEMENTED",
                    f"{flag}=1 (ClickHouse native block compression) is not supported by "
                    "cost-warehouse; use HTTP Content-Encoding and enable_http_compression",
                )
        chunks = decode_body(body.chunks(), self.headers.get("Content-Encoding", ""))
        query = params.get("query", "")
        files: dict[str, bytes] = {}
        ctype = self.headers.get("Content-Type", "")
        if method == "POST" and ctype.lower().startswith("multipart/form-data"):
            form = parse_multipart(ctype, b"".join(chunks))
            params = {**params, **form.fields}
            query, files, chunks = params.get("query", ""), form.files, iter(())
        elif method != "POST":
            body.drain()
            chunks = iter(())
            if not query:
                self._send(200, b"Ok.\n", {"Content-Type": "text/html; charset=UTF-8"})
                return
        settings, http_settings, bind = self._classify(params, files)
        if method == "GET":
            settings.setdefault("readonly", "2")  # as ClickHouse: GET never modifies data
        externals = [external_table(name, data, params) for name, data in files.items()]
        database = params.get("database") or None

        head = bytearray((query + "\n").encode() if query else b"")
        complete = False
        while (split := split_insert(bytes(head), complete)) == NEED_MORE:
            piece = next(chunks, None) if len(head) < MAX_STATEMENT_HEAD else None
            if piece is None:
                complete = True
            else:
                head += piece
        if isinstance(split, InsertSplit):
            data = itertools.chain([bytes(head[split.data_offset :])], chunks)
            stats = engine.insert(
                split.statement, split.fmt, data, database=database, settings=settings
            )
            self._answer(b"", None, stats, query_id, settings, http_settings)
            return
        raw_sql = bytes(head) + b"".join(chunks)
        if not raw_sql.strip():
            raise EngineError(62, "SYNTAX_ERROR", "Empty query")
        sql: str | bytes
        try:
            sql = raw_sql.decode("utf-8")
        except UnicodeDecodeError:
            sql = raw_sql  # binary bind values: the engine takes bytes as they are
        returns_rows, named_format = statement_shape(raw_sql.decode("latin-1"))
        fmt = params.get("default_format") or "TabSeparated"
        output, stats = engine.execute(
            sql,
            fmt=fmt,
            params=bind,
            database=database,
            settings=settings,
            external_tables=externals,
        )
        result_format = (named_format or fmt) if returns_rows or output else None
        self._answer(output, result_format, stats, query_id, settings, http_settings)

    @staticmethod
    def _classify(
        params: dict[str, str], files: dict[str, bytes]
    ) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
        """Split URL/form parameters into engine settings, HTTP-level settings and bindings."""
        external_params = {
            f"{name}_{part}" for name in files for part in ("structure", "types", "format")
        }
        settings: dict[str, str] = {}
        http_settings: dict[str, str] = {}
        bind: dict[str, str] = {}
        for key, value in params.items():
            if not key or key in RESERVED_PARAMS or key in external_params:
                continue
            if key.startswith("param_"):
                bind[key[len("param_") :]] = value
            elif key in HTTP_LEVEL_SETTINGS:
                http_settings[key] = value
            else:
                settings[key] = value
        return settings, http_settings, bind

    def _common_headers(self, query_id: str, timezone: str | None = None) -> dict[str, str]:
        return {
            "X-ClickHouse-Server-Display-Name": self.server.display_name,
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Timezone": timezone or self.server.engine.timezone,
        }

    def _answer(
        self,
        output: bytes,
        result_format: str | None,
        stats: QueryStats,
        query_id: str,
        settings: dict[str, str],
        http_settings: dict[str, str],
    ) -> None:
        headers = self._common_headers(query_id, settings.get("session_timezone"))
        if result_format:
            headers["X-ClickHouse-Format"] = result_format
            headers["Content-Type"] = content_type(result_format)
        else:
            headers["Content-Type"] = "text/plain; charset=UTF-8"
        headers["X-ClickHouse-Summary"] = json.dumps(stats.summary(), separators=(",", ":"))
        defaults = self.server.engine.http_defaults
        enabled = http_settings.get(
            "enable_http_compression", defaults.get("enable_http_compression", "0")
        )
        encoding = pick_response_encoding(self.headers.get("Accept-Encoding", ""))
        if output and encoding and _truthy(enabled):
            level = int(http_settings.get("http_zlib_compression_level", "3") or 3)
            output = compress(output, encoding, level)
            headers["Content-Encoding"] = encoding
        self._send(200, output, headers)

    def _fail(self, exc: EngineError, body: RequestBody, query_id: str) -> None:
        """Answer with ClickHouse's error shape, after reading the rest of the request body."""
        try:
            body.drain()
        except Exception:
            self.close_connection = True  # the body is unreadable: this connection is done
        headers = self._common_headers(query_id)
        headers["Content-Type"] = "text/plain; charset=UTF-8"
        headers["X-ClickHouse-Exception-Code"] = str(exc.code)
        try:
            self._send(exc.http_status, exc.body(self.server.engine.version).encode(), headers)
        except OSError:
            self.close_connection = True

    def _send(self, status: int, data: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)


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
        print(
            f"cost-warehouse: {exc.args[-1] if isinstance(exc, OSError) else exc}", file=sys.stderr
        )
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
