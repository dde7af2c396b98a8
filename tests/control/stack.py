"""The collection-control stack as the tests see it (`Stack`), the keys it knows, the AWS peer that
rejects every key, and the GraphQL documents the fixture drives Dagster with."""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient

from cost_local.sandbox.catalog import demo_accounts

REJECTED_KEY_ID = "AKIAREJECTEDKEY00042"
REJECTED_SECRET = "Zr9Kq2Lx7Vb4Nw1Tc8Hy5Jm3Pd6Fs0GaEoUiYt0B"
GOOD_KEY_ID = "AKIAMOTOTESTKEY00007"
GOOD_SECRET = "mQ2nR5tV8xZ1bD4fH7jK0lP3sW6yA9cE2gI5kM8o"


def rejecting_aws() -> ThreadingHTTPServer:
    """Answers every AWS JSON call exactly as AWS does for an unknown access key."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:  # Vultr-style REST: the same refusal
            self.do_POST()

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = json.dumps(
                {
                    "__type": "UnrecognizedClientException",
                    "message": "The security token included in the request is invalid.",
                }
            ).encode()
            self.send_response(400)
            self.send_header("Content-Type", "application/x-amz-json-1.1")
            self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def aws_entry(customer_id: str, key_prefix: str, endpoint_env: str) -> dict[str, Any]:
    account = next(a for a in demo_accounts(customer_id) if a.provider == "aws")
    return {
        "name": customer_id.title(),
        "providers": {
            "aws": {
                "billing_account_id": account.billing_account_id,
                "credentials": {
                    "access_key_id_env": f"{key_prefix}_KEY_ID",
                    "secret_access_key_env": f"{key_prefix}_SECRET",
                },
                "endpoint_url_env": endpoint_env,
            }
        },
    }


@dataclass
class Stack:
    """The running stack and the keys the tests call the API with."""

    api: TestClient
    token: str  # may use acme, badco and racer
    outsider_token: str  # may use only "other"
    keys_file: Path
    moto_url: str
    dagster_url: str
    dagster: Any  # the `dagster dev` process

    def headers(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.token}"}

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> Any:
        answer = httpx.post(
            f"{self.dagster_url}/graphql",
            json={"query": query, "variables": variables or {}},
            timeout=30,
        )
        return answer.json()["data"]

    def set_schedule(self, running: bool) -> None:
        """Turn the collection schedule on or off through Dagster's own mutations."""
        if running:
            done = self.graphql(START_SCHEDULE, {"selector": SCHEDULE})["startSchedule"]
        else:
            state = self.graphql(SCHEDULE_STATE_ID, {"selector": SCHEDULE})
            state_id = state["scheduleOrError"]["scheduleState"]["id"]
            done = self.graphql(STOP_SCHEDULE, {"id": state_id})["stopRunningSchedule"]
        assert done["__typename"] == "ScheduleStateResult", done

    def wait_for_end(self, task_id: str, timeout_s: float = 120) -> dict[str, Any]:
        """Poll collection-status until the run has ended; returns the last answer."""
        deadline = time.monotonic() + timeout_s
        while True:
            answer = self.api.get(
                f"/api/v2/costs/collection-status/{task_id}", headers=self.headers()
            )
            assert answer.status_code == 200, answer.text
            body: dict[str, Any] = answer.json()
            if body["ended_at"] is not None or time.monotonic() > deadline:
                return body
            time.sleep(1)


SCHEDULE = {
    "repositoryLocationName": "cost_pipelines",
    "repositoryName": "__repository__",
    "scheduleName": "collect_costs_every_15_minutes",
}
SCHEDULE_STATE_ID = """
query State($selector: ScheduleSelector!) {
  scheduleOrError(scheduleSelector: $selector) { ... on Schedule { scheduleState { id } } }
}
"""
START_SCHEDULE = """
mutation Start($selector: ScheduleSelector!) {
  startSchedule(scheduleSelector: $selector) { __typename }
}
"""
LOCATION = """
query Location {
  workspaceOrError {
    ... on Workspace {
      locationEntries { name locationOrLoadError { __typename ... on PythonError { message } } }
    }
  }
}
"""
STOP_SCHEDULE = """
mutation Stop($id: String!) { stopRunningSchedule(id: $id) { __typename } }
"""
