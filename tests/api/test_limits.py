"""What one client may send: a body above MAX_BODY_BYTES is refused with 413 before it is parsed,
and one key's requests above its rate get 429 with Retry-After while other keys go on."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cost_api.auth import add_key
from tests.support.api import serve_api
from tests.support.processes import WarehouseProcess

TRIGGER = "/api/v2/costs/trigger-collection"
BURST = 5


@pytest.fixture(scope="module")
def limited(
    warehouse: WarehouseProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[TestClient, str, str]]:
    tmp: Path = tmp_path_factory.mktemp("limits")
    busy = add_key(tmp / "keys.yaml", "busy", ["acme"])
    calm = add_key(tmp / "keys.yaml", "calm", ["acme"])
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("MAX_BODY_BYTES", "1024")
        monkeypatch.setenv("RATE_LIMIT_PER_MINUTE", "6")
        monkeypatch.setenv("RATE_LIMIT_BURST", str(BURST))
        with serve_api(monkeypatch, warehouse.port, tmp / "keys.yaml") as api:
            yield api, busy, calm


def body_of(size: int) -> bytes:
    return json.dumps({"customer_id": "acme", "pad": "x" * size}).encode()


def test_a_body_above_the_limit_is_413_by_its_content_length(
    limited: tuple[TestClient, str, str],
) -> None:
    api, _, calm = limited
    answer = api.post(
        TRIGGER,
        content=body_of(50_000),
        headers={"Authorization": f"Bearer {calm}", "Content-Type": "application/json"},
    )
    assert answer.status_code == 413, answer.text
    assert "1024 bytes" in answer.json()["detail"]


def test_a_chunked_body_above_the_limit_is_413_once_it_passes_the_limit(
    limited: tuple[TestClient, str, str],
) -> None:
    api, _, calm = limited

    def chunks() -> Iterator[bytes]:
        data = body_of(50_000)
        for i in range(0, len(data), 512):
            yield data[i : i + 512]

    answer = api.post(
        TRIGGER,
        content=chunks(),
        headers={"Authorization": f"Bearer {calm}", "Content-Type": "application/json"},
    )
    assert answer.status_code == 413, answer.text


def test_a_key_above_its_rate_gets_429_with_retry_after_and_other_keys_go_on(
    limited: tuple[TestClient, str, str],
) -> None:
    api, busy, calm = limited

    def read(token: str) -> int:
        answer = api.get(
            "/api/v2/costs/acme/all/total",
            params={"days": 100_000},  # refused with 422 after the key: no warehouse work
            headers={"Authorization": f"Bearer {token}"},
        )
        if answer.status_code == 429:
            assert int(answer.headers["Retry-After"]) >= 1
        return answer.status_code

    codes = [read(busy) for _ in range(BURST + 2)]
    assert codes[:BURST] == [422] * BURST
    assert codes[BURST:] == [429, 429]
    assert read(calm) == 422
