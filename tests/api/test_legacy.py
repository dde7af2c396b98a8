"""The seed's V1 routes still answer, from ClickHouse, and say they are deprecated."""

from __future__ import annotations

from email.utils import parsedate_to_datetime

import pytest

from tests.support.api import Api

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("provider", ["aws", "gcp", "azure"])
def test_a_v1_route_answers_like_v2_by_type_with_deprecation_headers(
    api: Api, provider: str
) -> None:
    old = api.get(f"/api/v1/{provider}/costs", customer_id="acme", days=60)
    new = api.get(f"/api/v2/costs/acme/{provider}/by-type", days=60)
    assert old.status_code == 200
    assert old.json() == new.json() and old.json()["data"]
    assert old.headers["Deprecation"].startswith("@")
    sunset = parsedate_to_datetime(old.headers["Sunset"])
    assert sunset.timestamp() > int(old.headers["Deprecation"][1:])
    assert f"/api/v2/costs/acme/{provider}/by-type" in old.headers["Link"]


def test_a_v1_route_needs_a_key_and_respects_its_scope(api: Api) -> None:
    assert api.client.get("/api/v1/aws/costs", params={"customer_id": "acme"}).status_code == 401
    forbidden = api.get("/api/v1/aws/costs", token=api.scoped_token, customer_id="globex")
    unknown = api.get("/api/v1/aws/costs", token=api.scoped_token, customer_id="nobody")
    assert forbidden.status_code == unknown.status_code == 403
    assert forbidden.content == unknown.content


def test_v1_routes_are_marked_deprecated_in_openapi(api: Api) -> None:
    paths = api.client.get("/openapi.json").json()["paths"]
    for provider in ("aws", "gcp", "azure"):
        assert paths[f"/api/v1/{provider}/costs"]["get"]["deprecated"] is True
    assert "deprecated" not in paths["/api/v2/costs/{customer_id}/{provider}/total"]["get"]
