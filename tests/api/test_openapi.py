"""The OpenAPI document is valid and the API keeps to it under generated requests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from openapi_spec_validator import validate
from schemathesis import checks

from cost_api.main import create_app
from tests.support.api import Api, serve_api

pytestmark = pytest.mark.slow

V2 = "/api/v2/costs/{customer_id}/{provider}"


def test_the_openapi_document_is_valid_openapi_3(api: Api) -> None:
    document = api.client.get("/openapi.json").json()
    assert document["openapi"].startswith("3.")
    validate(document)


def test_every_cost_read_documents_its_parameters_and_errors(api: Api) -> None:
    paths = api.client.get("/openapi.json").json()["paths"]
    for endpoint in ("metrics", "latest", "trends", "by-resource", "by-type", "total"):
        operation = paths[f"{V2}/{endpoint}"]["get"]
        assert {"200", "401", "403", "422", "503"} <= operation["responses"].keys()
        names = {p["name"] for p in operation["parameters"]}
        assert {"customer_id", "provider", "cost_metric"} <= names
        assert all(p.get("description") for p in operation["parameters"]), endpoint
        if endpoint != "latest":
            assert {"days", "start", "end"} <= names
        if endpoint != "metrics":  # aggregates convert on request; lines stay as stored
            assert "currency" in names


def test_amounts_are_documented_as_exact_decimal_strings(api: Api) -> None:
    schemas = api.client.get("/openapi.json").json()["components"]["schemas"]
    amount = schemas["CurrencyAmount"]["properties"]["amount"]
    assert amount["type"] == "string" and amount["pattern"]


def test_each_router_documents_the_failures_of_the_service_behind_it(api: Api) -> None:
    paths = api.client.get("/openapi.json").json()["paths"]
    reads = [paths[f"{V2}/{e}"]["get"] for e in ("total", "trends")]
    reads.append(paths["/api/v1/aws/costs"]["get"])
    control = [
        paths["/api/v2/costs/trigger-collection"]["post"],
        paths["/api/v2/costs/{customer_id}/collection-history"]["get"],
        paths["/api/v2/collectors/status"]["get"],
    ]

    for operation in reads:
        codes = operation["responses"]
        assert {"401", "403", "500", "503"} <= codes.keys() and "502" not in codes
        assert "warehouse" in codes["503"]["description"]
    for operation in control:
        codes = operation["responses"]
        assert {"401", "403", "502", "503"} <= codes.keys()
        assert "Dagster" in codes["503"]["description"]


# The schema is read from an app built at import (schemathesis parametrizes at collection time);
# the fixture below runs that app's lifespan against the loaded warehouse.
APP = create_app()
# Only the cost reads and their V1 aliases: other routers have their own tests.
schema = schemathesis.openapi.from_asgi("/openapi.json", APP).include(tag=["costs", "legacy"])


@pytest.fixture(scope="module")
def generated_app(api: Api, warehouse: Any) -> Iterator[None]:
    with (
        pytest.MonkeyPatch.context() as monkeypatch,
        serve_api(monkeypatch, warehouse.port, api.keys_file, app=APP, database=api.database),
    ):
        yield


@schema.parametrize()
@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_generated_requests_get_no_server_error_and_match_the_schema(
    case: schemathesis.Case, api: Api, generated_app: None
) -> None:
    # positive_data_acceptance is left out on purpose: a period (start < end, at most 400 days)
    # and a cursor (one this API issued) are rules across parameters that OpenAPI cannot state,
    # so schema-valid requests rightly get 422 naming the parameter.
    case.call_and_validate(
        headers={"Authorization": f"Bearer {api.token}"},
        excluded_checks=[checks.positive_data_acceptance],
    )
