"""Input no route can use gets a 422 naming the field, never a 500 or a query: non-finite
numbers in a trigger body, a cursor whose offset is not an integer, days outside what the
warehouse's time type holds (one rule for reads and triggers)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cost_api.auth import add_key
from cost_api.params import EARLIEST, LATEST
from tests.support.api import serve_api
from tests.support.customers import write_customers
from tests.support.processes import WarehouseProcess

TRIGGER = "/api/v2/costs/trigger-collection"


@pytest.fixture(scope="module")
def client(
    warehouse: WarehouseProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[TestClient, dict[str, str]]]:
    tmp: Path = tmp_path_factory.mktemp("bad-input")
    token = add_key(tmp / "keys.yaml", "acme-ops", ["acme"])
    customers = write_customers(
        tmp / "customers.yaml",
        {
            "acme": {
                "name": "Acme",
                "providers": {
                    "vultr": {
                        "billing_account_ids": ["acme-vultr"],
                        "credentials": {"api_key": "ACME_VULTR_KEY"},
                    }
                },
            }
        },
    )
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("CUSTOMERS_FILE", str(customers))
        monkeypatch.setenv("DAGSTER_GRAPHQL_URL", "http://127.0.0.1:9/graphql")  # never reached
        with serve_api(monkeypatch, warehouse.port, tmp / "keys.yaml") as api:
            yield api, {"Authorization": f"Bearer {token}"}


def field_of(answer: Any) -> str:
    assert answer.status_code == 422, answer.text
    [error] = answer.json()["detail"]
    return str(error["loc"][-1])


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity"])
def test_a_non_finite_number_in_a_trigger_body_is_a_422_naming_the_field(
    client: tuple[TestClient, dict[str, str]], number: str
) -> None:
    api, headers = client
    body = '{"customer_id": "acme", "providers": ' + number + "}"
    headers = {**headers, "Content-Type": "application/json"}
    answer = api.post(TRIGGER, content=body, headers=headers)
    assert field_of(answer) == "providers"
    assert answer.json()["detail"][0]["input"] == str(float(number))


@pytest.mark.parametrize(
    ("window", "field"),
    [
        ({"start": "0001-01-01", "end": "0001-01-05"}, "start"),
        ({"start": "1969-12-30", "end": "1970-01-02"}, "start"),
        ({"start": "2106-01-01", "end": "2106-03-01"}, "end"),
    ],
)
def test_a_trigger_window_outside_the_date_range_is_a_422_naming_the_field(
    client: tuple[TestClient, dict[str, str]], window: dict[str, str], field: str
) -> None:
    api, headers = client
    answer = api.post(TRIGGER, json={"customer_id": "acme", **window}, headers=headers)
    assert field_of(answer) == field
    assert str(EARLIEST) in answer.text and str(LATEST) in answer.text


LINE = ["2026-11-03", "aws", "123456789012", "Amazon EC2", "i-1", "us-east-1", "Usage"]
LINE += ["1.5", None, None, None, "USD"]


def cursor_with(seen: Any = 0, line: Any = LINE) -> str:
    """A cursor of the shape the API writes (paging in test_cost_reads uses real ones), with one
    field changed by each case below."""
    raw = {"c": "acme", "p": "all", "m": "billed", "s": "2026-11-01", "e": "2026-11-08"}
    raw["k"], raw["n"] = line, seen
    return base64.urlsafe_b64encode(json.dumps(raw).encode()).decode().rstrip("=")


@pytest.mark.parametrize("seen", [True, False, 1.5, "3", None, -1])
def test_a_cursor_whose_count_is_not_an_integer_is_a_422_on_cursor(
    client: tuple[TestClient, dict[str, str]], seen: Any
) -> None:
    api, headers = client
    answer = api.get(
        "/api/v2/costs/acme/all/metrics", params={"cursor": cursor_with(seen)}, headers=headers
    )
    assert field_of(answer) == "cursor"


@pytest.mark.parametrize(
    "line",
    [
        LINE[:-1],  # a column short
        ["2026-11-03", 7, *LINE[2:]],  # a number where a text belongs
        [*LINE[:7], None, *LINE[8:]],  # no billed cost
        [*LINE[:7], "NaN", *LINE[8:]],
        [*LINE[:7], "Infinity", *LINE[8:]],
        [*LINE[:7], 1.5, *LINE[8:]],  # a float, not the exact text we write
        ["2026-12-24", *LINE[1:]],  # a day outside the cursor's period
        "not a line",
    ],
)
def test_a_cursor_whose_line_is_not_one_we_wrote_is_a_422_on_cursor(
    client: tuple[TestClient, dict[str, str]], line: Any
) -> None:
    api, headers = client
    answer = api.get(
        "/api/v2/costs/acme/all/metrics", params={"cursor": cursor_with(line=line)}, headers=headers
    )
    assert field_of(answer) == "cursor"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"start": "2106-01-01", "days": 400}, "days"),
        ({"start": "2106-01-02"}, "start"),
        ({"end": "2106-01-02"}, "end"),
        ({"start": "0001-01-01", "end": "0001-02-01"}, "start"),
    ],
)
def test_a_read_period_beyond_the_date_range_is_a_422_naming_the_parameter(
    client: tuple[TestClient, dict[str, str]], params: dict[str, Any], field: str
) -> None:
    api, headers = client
    answer = api.get("/api/v2/costs/acme/all/total", params=params, headers=headers)
    assert field_of(answer) == field
