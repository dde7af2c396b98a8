"""Dagster's errors reach clients without its module paths: right after Dagster resumes, its
webserver answers a launch with a PythonError naming `dagster._core.errors....` while it cannot
reach its code location; the API answers 503 (try again) and never shows the path."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from cost_api.control.client import DagsterClient
from cost_api.errors import ServiceUnavailable

UNREACHABLE = (
    "dagster._core.errors.DagsterUserCodeUnreachableError: Could not reach user code server. "
    "gRPC Error code: UNAVAILABLE\n"
)
CHECK_FAILED = (
    "dagster._core.errors.DagsterInvariantViolationError: dagster._core.definitions.asset_key "
    "AssetKey(['aws_costs']) is not in the job selection\n"
)


def graphql_peer(message: str, class_name: str) -> ThreadingHTTPServer:
    """Answers launchRun as Dagster's webserver does when the launch raised: HTTP 200, a
    PythonError result under data.launchRun."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = json.dumps(
                {
                    "data": {
                        "launchRun": {
                            "__typename": "PythonError",
                            "message": message,
                            "className": class_name,
                        }
                    }
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def peer(request: pytest.FixtureRequest) -> Iterator[str]:
    message, class_name = request.param
    server = graphql_peer(message, class_name)
    yield f"http://127.0.0.1:{server.server_address[1]}/graphql"
    server.shutdown()
    server.server_close()


async def launch(url: str) -> ServiceUnavailable:
    client = DagsterClient(url, "cost_pipelines", timeout_s=5)
    try:
        await client.launch_collection("acme", "aws", "ops")
    except ServiceUnavailable as exc:
        return exc
    finally:
        await client.aclose()
    raise AssertionError("the launch did not fail")


@pytest.mark.parametrize("peer", [(UNREACHABLE, "DagsterUserCodeUnreachableError")], indirect=True)
def test_an_unreachable_code_location_is_a_503_without_module_paths(peer: str) -> None:
    failure = asyncio.run(launch(peer))
    assert failure.status_code == 503
    assert "dagster._core" not in failure.reason and "errors." not in failure.reason


@pytest.mark.parametrize("peer", [(CHECK_FAILED, "DagsterInvariantViolationError")], indirect=True)
def test_another_dagster_error_is_a_502_naming_the_error_without_module_paths(peer: str) -> None:
    failure = asyncio.run(launch(peer))
    assert failure.status_code == 502
    assert "dagster._core" not in failure.reason and "definitions." not in failure.reason
    assert failure.reason.startswith("PythonError: DagsterInvariantViolationError: ")
    assert failure.reason.endswith("is not in the job selection")
