"""A local AWS-protocol peer in front of moto: answers throttling and credential errors exactly as
AWS does and forwards everything else, each access key to its own account (moto's
`x-moto-account-id`), as every AWS access key belongs to one account."""

from __future__ import annotations

import http.client
import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

CE_TARGET = "AWSInsightsIndexService.GetCostAndUsage"


@dataclass
class AwsError:
    status: int
    code: str
    message: str


@dataclass
class AwsPeer:
    """What the peer does besides forwarding: fail some CE calls, reject some access keys, and
    send each access key of `accounts` to its own moto account (others land in moto's default)."""

    url: str = ""
    fail_ce_calls: list[AwsError] = field(default_factory=list)
    rejected_keys: dict[str, AwsError] = field(default_factory=dict)
    accounts: dict[str, str] = field(default_factory=dict)
    ce_calls: int = 0
    answered_errors: list[str] = field(default_factory=list)


def _access_key(authorization: str) -> str:
    # "AWS4-HMAC-SHA256 Credential=AKID/20261130/us-east-1/ce/aws4_request, ..."
    _, _, rest = authorization.partition("Credential=")
    return rest.split("/", 1)[0]


def handler(peer: AwsPeer, upstream: str) -> type[BaseHTTPRequestHandler]:
    target = urlsplit(upstream)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _error(self, error: AwsError) -> None:
            body = json.dumps({"__type": error.code, "message": error.message}).encode()
            self.send_response(error.status)
            self.send_header("Content-Type", "application/x-amz-json-1.1")
            self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            peer.answered_errors.append(error.code)

        def _handle(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            key = _access_key(self.headers.get("Authorization", ""))
            with lock:
                rejected = peer.rejected_keys.get(key)
                failure = None
                if rejected is None and self.headers.get("X-Amz-Target") == CE_TARGET:
                    peer.ce_calls += 1
                    failure = peer.fail_ce_calls.pop(0) if peer.fail_ce_calls else None
            if rejected or failure:
                self._error(rejected or failure)  # type: ignore[arg-type]
                return
            conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
            headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
            if key in peer.accounts:
                headers["x-moto-account-id"] = peer.accounts[key]
            conn.request(self.command, self.path, body=body, headers=headers)
            answer = conn.getresponse()
            payload = answer.read()
            self.send_response(answer.status)
            for name, value in answer.getheaders():
                if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            conn.close()

        do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _handle

    return Handler


@contextmanager
def serve_aws_peer(upstream: str) -> Iterator[AwsPeer]:
    """An AwsPeer on a free 127.0.0.1 port forwarding to `upstream` (moto); stopped on exit."""
    peer = AwsPeer()
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler(peer, upstream))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    peer.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield peer
    finally:
        server.shutdown()
        server.server_close()
