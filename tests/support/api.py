"""The API in-process, configured only through the environment as in production."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from cost_api.main import create_app


@dataclass(frozen=True)
class Api:
    """The API under test and the keys it knows."""

    client: TestClient
    token: str  # reads every customer
    scoped_token: str  # reads only "acme"
    today: date
    keys_file: Path
    database: str  # where its data set is, on the shared warehouse

    def get(self, path: str, token: str | None = None, **params: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token or self.token}"}
        return self.client.get(path, params=params, headers=headers)


def serve_api(
    monkeypatch: pytest.MonkeyPatch,
    port: int,
    keys_file: Path,
    timeout_s: int = 10,
    app: FastAPI | None = None,
    database: str = "default",
) -> TestClient:
    """create_app() configured only through the environment, as in production."""
    monkeypatch.setenv("WAREHOUSE_PORT", str(port))
    monkeypatch.setenv("CLICKHOUSE_DATABASE", database)
    monkeypatch.setenv("API_KEYS_FILE", str(keys_file))
    monkeypatch.setenv("CLICKHOUSE_QUERY_TIMEOUT_S", str(timeout_s))
    monkeypatch.delenv("CLICKHOUSE_URL", raising=False)
    return TestClient(app or create_app())
