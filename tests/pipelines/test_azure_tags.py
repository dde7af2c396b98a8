"""Azure tags through the local Cost Management: the configured tag names are collected per
resource and day (grouped by TagKey, as the Query API answers them), stored lowercase whatever
casing the resource uses, and untagged resources and charges without a resource carry none."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from cost_local.sandbox.azure import AzureCostManagement
from cost_local.sandbox.azure_query import aggregate, parse_query
from cost_pipelines.assets.azure import tag_query_body
from cost_pipelines.assets.collection import DateWindow
from cost_pipelines.resources.clickhouse import ClickHouseResource
from tests.pipelines.rest_helpers import metadata
from tests.pipelines.test_azure_costs import (
    APP,
    BILLS_START,
    END,
    SECRET,
    START,
    bills,
    collect,
    entry,
)
from tests.support.customers import write_customers

pytestmark = pytest.mark.slow
KEYS = ["team", "env"]


@pytest.fixture
def page_size() -> int:
    return 40


@pytest.fixture
def azure(monkeypatch: pytest.MonkeyPatch, page_size: int) -> Iterator[AzureCostManagement]:
    with AzureCostManagement([APP], page_size=page_size, qpu_per_10_seconds=1000) as server:
        server.set_records(bills("contoso"))
        monkeypatch.setenv("TEST_AZURE_ENDPOINT", server.base_url)
        monkeypatch.setenv("AZ_TENANT", APP.tenant_id)
        monkeypatch.setenv("AZ_CLIENT", APP.client_id)
        monkeypatch.setenv("AZ_SECRET", SECRET)
        yield server


def tagged_entry() -> dict[str, Any]:
    config = entry("contoso")
    config["providers"]["azure"]["tag_keys"] = ["Team", "env"]  # names are case-insensitive
    return config


def stored_tags(warehouse: ClickHouseResource) -> dict[tuple[str, str], dict[str, str]]:
    rows = (
        warehouse.get_client()
        .query(
            "SELECT toString(toDate(ChargePeriodStart)), ResourceId, Tags "
            "FROM costs_current(customer_id='contoso') WHERE provider = 'azure'"
        )
        .result_rows
    )
    out: dict[tuple[str, str], dict[str, str]] = {}
    for day, resource, tags in rows:
        assert out.setdefault((day, resource), dict(tags)) == dict(tags)  # one set per day
    return out


def test_configured_tag_names_are_stored_lowercase_per_resource_and_day(
    tmp_path: Path, azure: AzureCostManagement, warehouse_resource: ClickHouseResource
) -> None:
    customers = write_customers(tmp_path / "c.yaml", {"contoso": tagged_entry()})

    assert collect(warehouse_resource, customers).success

    expected: dict[tuple[str, str], dict[str, str]] = {}
    for record in bills("contoso"):
        if START <= record.day < END:
            tags = {k.lower(): v for k, v in record.tags.items() if k.lower() in KEYS}
            expected[(record.day.isoformat(), record.resource_id.lower())] = tags
    stored = stored_tags(warehouse_resource)
    assert stored == expected
    written = {k for record in bills("contoso") for k in record.tags}
    assert {"Team", "team"} <= written  # the sandbox writes both casings: stored as one name
    assert any(not tags for (_, resource), tags in stored.items() if resource)  # untagged ones
    assert all(not tags for (_, resource), tags in stored.items() if not resource)


def test_without_tag_names_no_tag_query_is_made_and_lines_carry_no_tags(
    tmp_path: Path, azure: AzureCostManagement, warehouse_resource: ClickHouseResource
) -> None:
    customers = write_customers(tmp_path / "c.yaml", {"contoso": entry("contoso")})

    assert collect(warehouse_resource, customers).success

    assert all(not tags for tags in stored_tags(warehouse_resource).values())
    assert not [r for r in azure.requests if b"TagKey" in r.body]


@pytest.mark.parametrize("page_size", [100_000])
def test_each_tag_name_costs_one_query_per_period(
    tmp_path: Path, azure: AzureCostManagement, warehouse_resource: ClickHouseResource
) -> None:
    customers = write_customers(tmp_path / "c.yaml", {"contoso": tagged_entry()})
    start, end = BILLS_START, BILLS_START + timedelta(days=36)

    result = collect(warehouse_resource, customers, start, end)

    # As without tags (a token, 5 queries per period, 2 label queries), plus 2 tag names x 2
    # periods ([Sep 1, Oct 1) and [Oct 1, Oct 7)).
    assert metadata(result)["api_requests"] == 1 + 2 * 5 + 2 + 2 * 2 == len(azure.requests)


def test_the_simulator_answers_tag_groupings_with_tag_key_and_tag_value_columns() -> None:
    body = tag_query_body(DateWindow(START, START + timedelta(days=1)), "team")
    columns, rows = aggregate(bills("contoso"), parse_query(body))
    assert [c["name"] for c in columns] == [
        "Cost",
        "UsageDate",
        "ResourceId",
        "TagKey",
        "TagValue",
        "Currency",
    ]
    assert {row[3] for row in rows} == {"team"}
    assert None in {row[4] for row in rows}  # untagged resources: TagValue null
