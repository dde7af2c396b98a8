"""What every provider simulator shares: a threaded HTTP server on 127.0.0.1, request parsing,
exact-decimal JSON, and start/stop from tests or the sandbox process."""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Request:
    """One HTTP request as a simulator sees it."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]  # lower-cased names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null", parse_float=Decimal)

    def form(self) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(self.body.decode("utf-8")).items()}

    def bearer(self) -> str | None:
        scheme, _, token = self.headers.get("authorization", "").partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None


@dataclass
class Response:
    """An answer: JSON-able body (Decimals stay exact) or raw bytes, status and headers."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def dumps(value: Any) -> str:
    """JSON text in which Decimals are written as exact numbers, never rounded through float."""
    if isinstance(value, Decimal):
        return decimal_text(value)
    if isinstance(value, Mapping):
        items = (f"{json.dumps(str(k))}:{dumps(v)}" for k, v in value.items())
        return "{" + ",".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    return json.dumps(value)


def decimal_text(value: Decimal) -> str:
    """Plain decimal notation without trailing zeros: 0.0000002, 12.5, -3."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


class Simulator:
    """Base of the provider simulators: subclasses implement `handle`."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._address = (host, port)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.lock = threading.RLock()  # guards the simulator's mutable state
        # what clients sent (the latest ones), for tests and for watching the demo
        self.requests: deque[Request] = deque(maxlen=10_000)

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> str:
        """Listen (port 0 = a free port) and serve in a daemon thread; returns the base URL."""
        if self._server is not None:
            return self.base_url
        self._server = ThreadingHTTPServer(self._address, _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},  # quick shutdown in tests
            name=type(self).__name__,
            daemon=True,
        )
        self._thread.start()
        return self.base_url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Simulator:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def handle(self, request: Request) -> Response:
        raise NotImplementedError


def _handler_for(simulator: Simulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            request = Request(
                method=self.command,
                path=parts.path,
                query={k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()},
                headers={k.lower(): v for k, v in self.headers.items()},
                body=self.rfile.read(length) if length else b"",
            )
            with simulator.lock:
                simulator.requests.append(request)
            try:
                response = simulator.handle(request)
            except Exception as error:  # a simulator bug must show as a 500, not a hang
                response = Response(500, {"error": f"simulator error: {error!r}"})
            self._send(response)

        def _send(self, response: Response) -> None:
            if isinstance(response.body, bytes):
                payload, content_type = response.body, "application/octet-stream"
            else:
                payload = dumps(response.body).encode("utf-8")
                content_type = "application/json; charset=utf-8"
            self.send_response(response.status)
            headers = {"Content-Type": content_type, **response.headers}
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass  # requests are kept in simulator.requests; stderr stays quiet

    return Handler
