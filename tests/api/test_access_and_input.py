"""Who may read what, and what bad input gets: 401, 403 and 4xx answers naming the parameter."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.api import Api

pytestmark = pytest.mark.slow

TOTAL = "/api/v2/costs/acme/all/total"
ENDPOINTS = ["metrics", "latest", "trends", "by-resource", "by-type", "total"]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_a_request_without_a_key_is_unauthorized(api: Api, endpoint: str) -> None:
    answer = api.client.get(f"/api/v2/costs/acme/all/{endpoint}")
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == "Bearer"
    assert "API key" in answer.json()["detail"]


@pytest.mark.parametrize(
    "header", ["Bearer cpk_not-a-key", "Basic YWRtaW46YWRtaW4=", "Bearer", "cpk_token-only"]
)
def test_a_wrong_or_malformed_key_is_unauthorized(api: Api, header: str) -> None:
    answer = api.client.get(TOTAL, headers={"Authorization": header})
    assert answer.status_code == 401


def test_a_scoped_key_reads_its_own_customer(api: Api) -> None:
    assert api.get(TOTAL, token=api.scoped_token).status_code == 200


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_another_customer_is_forbidden_exactly_like_an_unknown_one(api: Api, endpoint: str) -> None:
    forbidden = api.get(f"/api/v2/costs/globex/all/{endpoint}", token=api.scoped_token)
    unknown = api.get(f"/api/v2/costs/no-such-customer/all/{endpoint}", token=api.scoped_token)
    assert forbidden.status_code == unknown.status_code == 403
    assert forbidden.content == unknown.content
    assert dict(forbidden.headers) == dict(unknown.headers)


BAD_INPUT: list[tuple[str, dict[str, Any], str]] = [
    ("/api/v2/costs/acme/azurex/total", {}, "provider"),
    ("/api/v2/costs/acme/all/total", {"days": 0}, "days"),
    ("/api/v2/costs/acme/all/total", {"days": 401}, "days"),
    ("/api/v2/costs/acme/all/total", {"days": "thirty"}, "days"),
    ("/api/v2/costs/acme/all/metrics", {"limit": 10**9}, "limit"),
    ("/api/v2/costs/acme/all/by-resource", {"limit": 0}, "limit"),
    ("/api/v2/costs/acme/all/total", {"start": "2026-02-30"}, "start"),
    ("/api/v2/costs/acme/all/total", {"end": "30/01/2026"}, "end"),
    ("/api/v2/costs/acme/all/total", {"start": "1900-01-01", "end": "1900-02-01"}, "start"),
    ("/api/v2/costs/acme/all/total", {"start": "2026-03-01", "end": "2026-02-01"}, "end"),
    ("/api/v2/costs/acme/all/total", {"start": "2026-03-01", "end": "2026-03-01"}, "end"),
    ("/api/v2/costs/acme/all/total", {"start": "2020-01-01", "end": "2026-01-01"}, "start"),
    (
        "/api/v2/costs/acme/all/total",
        {"days": 5, "start": "2026-01-01", "end": "2026-02-01"},
        "days",
    ),
    ("/api/v2/costs/acme/all/total", {"cost_metric": "amortized"}, "cost_metric"),
    ("/api/v2/costs/acme/all/trends", {"group_by": "year"}, "group_by"),
    ("/api/v2/costs/acme/all/metrics", {"cursor": "not-a-cursor"}, "cursor"),
    ("/api/v2/costs/acme/all/metrics", {"cursor": "eyJzIjogMX0"}, "cursor"),
    ("/api/v2/costs/" + "a" * 65 + "/all/total", {}, "customer_id"),
    ("/api/v2/costs/acme%20corp/all/total", {}, "customer_id"),
    ("/api/v2/costs/-acme/all/total", {}, "customer_id"),
    ("/api/v2/costs/acm%C3%A9/all/total", {}, "customer_id"),
    ("/api/v1/aws/costs", {}, "customer_id"),
    ("/api/v1/aws/costs", {"customer_id": "a;drop table costs"}, "customer_id"),
    # The customers file's rule (cost_pipelines.customers): no uppercase, no '.', at most 63.
    ("/api/v2/costs/Acme/all/total", {}, "customer_id"),
    ("/api/v2/costs/acme.corp/all/total", {}, "customer_id"),
    ("/api/v2/costs/" + "a" * 64 + "/all/total", {}, "customer_id"),
    ("/api/v1/aws/costs", {"customer_id": "ACME"}, "customer_id"),
]


@pytest.mark.parametrize(("path", "params", "parameter"), BAD_INPUT)
def test_bad_input_is_rejected_naming_the_parameter(
    api: Api, path: str, params: dict[str, Any], parameter: str
) -> None:
    answer = api.get(path, **params)
    assert answer.status_code == 422, answer.text
    errors = answer.json()["detail"]
    assert [e["loc"][-1] for e in errors] == [parameter]
    assert errors[0]["msg"]


def test_a_cursor_keeps_the_period_of_its_first_page(api: Api) -> None:
    first = api.get("/api/v2/costs/acme/all/metrics", limit=5, days=3).json()
    second = api.get(
        "/api/v2/costs/acme/all/metrics", limit=5, days=90, cursor=first["next_cursor"]
    ).json()
    assert second["period"] == first["period"] and second["count"] == first["count"]
    assert second["data"] and second["data"][0] != first["data"][0]
