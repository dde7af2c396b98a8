"""A fault-injecting HTTP proxy in front of a provider simulator: for the requests of one
credential it answers bursts of 429 with Retry-After, 5xx, answers slower than the client's
timeout, truncated bodies, or the simulator's JSON with a field added or removed; every other
request is forwarded untouched."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from cost_local.sandbox.simulator import dumps


@dataclass
class Fault:
    """What to do to a matching request: `kind` is status, slow, truncate, add_field or
    drop_field; `times` how many matching requests it applies to (None: all of them). A status
    fault answers `body` when given: the provider's own error document (AWS's `__type`,
    Google's `error.errors[].reason`), so the client classifies it as it would the real one."""

    kind: str
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    seconds: float = 0.0
    name: str = ""
    times: int | None = None


@dataclass
class Chaos:
    url: str = ""
    victim: str = ""  # requests whose Authorization header or path contain this get the faults
    faults: list[Fault] = field(default_factory=list)
    applied: list[str] = field(default_factory=list)


def _mutate(value: Any, fault: Fault) -> Any:
    """Every object of the answer with `fault.name` added (a field the client never heard of) or
    removed (a field it needs)."""
    if isinstance(value, dict):
        out = {
            k: _mutate(v, fault)
            for k, v in value.items()
            if not (fault.kind == "drop_field" and k == fault.name)
        }
        if fault.kind == "add_field":
            out[fault.name] = {"introduced": "2026-12", "values": [1, 2]}
        return out
    if isinstance(value, list):
        return [_mutate(v, fault) for v in value]
    return value


def _handler(chaos: Chaos, upstream: str) -> type[BaseHTTPRequestHandler]:
    target = urlsplit(upstream)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _fault(self) -> Fault | None:
            if chaos.victim not in (self.headers.get("Authorization") or "") + self.path:
                return None
            with lock:
                for fault in chaos.faults:
                    if fault.times is None or fault.times > 0:
                        if fault.times is not None:
                            fault.times -= 1
                        chaos.applied.append(fault.kind)
                        return fault
            return None

        def _reply(self, status: int, payload: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _handle(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            fault = self._fault()
            if fault and fault.kind == "status":
                payload = (
                    fault.body or json.dumps({"error": "injected", "status": fault.status}).encode()
                )
                headers = {"Content-Type": "application/json", **fault.headers}
                self._reply(fault.status, payload, headers)
                return
            if fault and fault.kind == "slow":
                time.sleep(fault.seconds)
            conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
            headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
            conn.request(self.command, self.path, body=body, headers=headers)
            answer = conn.getresponse()
            payload = answer.read()
            conn.close()
            passed = {
                k: v
                for k, v in answer.getheaders()
                if k.lower() not in ("content-length", "transfer-encoding", "connection")
            }
            if fault and fault.kind in ("add_field", "drop_field"):
                answer_json = json.loads(payload, parse_float=Decimal)  # every digit kept
                payload = dumps(_mutate(answer_json, fault)).encode()
            if fault and fault.kind == "truncate":
                self.send_response(answer.status)
                for name, value in passed.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload[: len(payload) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self._reply(answer.status, payload, passed)

        do_GET = do_POST = _handle

    return Handler


@contextmanager
def chaos_proxy(upstream: str, victim: str) -> Iterator[Chaos]:
    """A Chaos proxy on a free 127.0.0.1 port in front of `upstream`; stopped on exit."""
    chaos = Chaos(victim=victim)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(chaos, upstream))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    chaos.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield chaos
    finally:
        server.shutdown()
        server.server_close()
