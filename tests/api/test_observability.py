"""What operators see of the API: /metrics counts each request by its route template (never a
customer id), times warehouse queries and Dagster calls; each request is one JSON log record
with its route, status, duration and key name; no API key ever shows in either."""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from cost_api.auth import add_key
from cost_api.main import create_app
from tests.support.api import Api

TOTAL = "/api/v2/costs/{customer_id}/{provider}/total"
HISTORY = "/api/v2/costs/{customer_id}/collection-history"


def scrape(client: TestClient, token: str | None = None) -> dict[tuple[str, frozenset[Any]], float]:
    """Every sample of /metrics, by name and labels."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: dict[tuple[str, frozenset[Any]], float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def count(samples: dict[tuple[str, frozenset[Any]], float], name: str, **labels: str) -> float:
    """A histogram's observations with these labels (of every other label value)."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == f"{name}_count" and wanted <= ls)


def test_a_request_is_counted_by_its_route_template_and_its_queries_are_timed(api: Api) -> None:
    before = scrape(api.client)

    assert api.get("/api/v2/costs/acme/aws/total", days=30).status_code == 200

    after = scrape(api.client)
    labels = {"method": "GET", "route": TOTAL, "status_class": "2xx"}
    histogram = "cost_api_request_duration_seconds_count"
    assert value(after, histogram, **labels) == value(before, histogram, **labels) + 1
    warehouse = "cost_api_warehouse_query_duration_seconds"
    assert count(after, warehouse, outcome="ok") > count(before, warehouse, outcome="ok")
    # No label value is a customer id, a raw path or anything a client chose.
    label_values = {v for _, labels_ in after for _, v in labels_}
    assert not any("acme" in v or "globex" in v for v in label_values)


def test_errors_are_counted_by_status_class_and_dagster_calls_by_operation(api: Api) -> None:
    before = scrape(api.client)

    assert api.get("/api/v2/costs/acme/aws/total", token="cpk_not-a-key").status_code == 401
    assert api.get("/api/v2/costs/acme/no-such-route").status_code == 404
    # No Dagster behind this API (a closed port): the history read is a 503.
    assert api.get("/api/v2/costs/acme/collection-history").status_code == 503
    assert api.client.request("BREW", "/health").status_code == 405  # any word is a method

    after = scrape(api.client)
    errors = "cost_api_request_errors_total"
    for route, status_class in ((TOTAL, "4xx"), ("unmatched", "4xx"), (HISTORY, "5xx")):
        labels = {"method": "GET", "route": route, "status_class": status_class}
        assert value(after, errors, **labels) == value(before, errors, **labels) + 1, route
    brewed = {"method": "other", "route": "/health", "status_class": "4xx"}
    assert value(after, errors, **brewed) == value(before, errors, **brewed) + 1
    assert not any(("method", "BREW") in labels for _, labels in after)
    dagster = "cost_api_dagster_request_duration_seconds"
    runs = {"operation": "Runs", "outcome": "unreachable"}
    assert count(after, dagster, **runs) == count(before, dagster, **runs) + 1


@pytest.fixture
def json_logged_api(
    api: Api, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[TestClient]:
    """An API of its own on the module's warehouse and keys, logging JSON, /metrics keyed."""
    monkeypatch.setenv("LOG_FORMAT", "json")
    monkeypatch.setenv("METRICS_REQUIRE_KEY", "true")
    with TestClient(create_app()) as client:
        capsys.readouterr()  # what starting it logged
        yield client


def test_requests_log_json_with_route_status_and_key_name_and_no_key_is_ever_shown(
    api: Api, json_logged_api: TestClient, capsys: pytest.CaptureFixture[str]
) -> None:
    client = json_logged_api
    token = add_key(api.keys_file, "observability", ["acme"])
    wrong = token[:-4] + "abcd"

    def get(path: str, key: str | None) -> int:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return client.get(path, headers=headers, params={"days": 30}).status_code

    assert get("/api/v2/costs/acme/aws/total", token) == 200
    assert get("/api/v2/costs/globex/gcp/total", token) == 403
    assert get("/api/v2/costs/acme/aws/total", wrong) == 401
    assert get("/metrics", None) == 401  # METRICS_REQUIRE_KEY
    metrics = client.get("/metrics", headers={"Authorization": f"Bearer {token}"}).text

    output = capsys.readouterr().err
    records = [json.loads(line) for line in output.splitlines() if line.strip()]
    requests = [r for r in records if r["logger"] == "cost_api.requests"]
    read, forbidden, unknown = requests[:3]
    assert read["route"] == TOTAL and read["method"] == "GET"
    assert (read["status"], read["customer_id"], read["provider"]) == (200, "acme", "aws")
    assert read["key"] == "observability" and read["duration_ms"] >= 0
    assert read["level"] == "info" and read["event"] == f"GET {TOTAL} 200"
    assert (forbidden["status"], forbidden["customer_id"], forbidden["key"]) == (
        403,
        "globex",
        "observability",
    )
    assert unknown["status"] == 401 and "key" not in unknown
    for secret in (token, wrong, token.removeprefix("cpk_")):
        assert secret not in output
        assert secret not in metrics


def test_the_started_api_keeps_its_long_lived_objects_out_of_every_collection(api: Api) -> None:
    """A full collection scans only what requests allocate: the modules, clients and settings
    of the process sit in the permanent generation (a full scan of them took ~175 ms, the p99
    of large answers)."""
    gc.unfreeze()  # whatever an earlier start in this process froze
    with TestClient(create_app()) as client:
        assert client.get("/health").status_code in (200, 503)
        assert gc.get_freeze_count() > len(gc.get_objects())
