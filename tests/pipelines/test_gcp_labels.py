"""GCP labels through the local BigQuery export: every line's Tags are its project's labels
overridden by its resource's own labels, as FOCUS finalizes inherited tags."""

from __future__ import annotations

from pathlib import Path

import pytest

from cost_local.sandbox.gcp import BigQueryBilling
from cost_pipelines.assets.gcp import GCP
from cost_pipelines.resources.clickhouse import ClickHouseResource
from tests.pipelines.rest_helpers import run_costs
from tests.pipelines.test_gcp_costs import (  # noqa: F401 (the `bigquery` fixture)
    END,
    RESOURCE,
    START,
    account,
    bigquery,
    entry,
)
from tests.support.customers import write_customers

pytestmark = pytest.mark.slow


def test_tags_are_resource_labels_over_project_labels(
    tmp_path: Path,
    bigquery: BigQueryBilling,  # noqa: F811
    warehouse_resource: ClickHouseResource,
) -> None:
    customers = write_customers(tmp_path / "c.yaml", {"initech": entry("initech")})

    [result] = run_costs(
        GCP, RESOURCE, customers, ["initech"], warehouse_resource, START, END
    ).values()

    assert result.success
    own = account("initech").billing_account_id
    expected: dict[tuple[str, str], dict[str, str]] = {}
    for row in bigquery.visible_rows():
        if row["billing_account_id"] != own or not START <= row["usage_start_time"].date() < END:
            continue
        tags = {label["key"]: label["value"] for label in row["project"]["labels"]}
        tags.update({label["key"]: label["value"] for label in row["labels"]})
        key = (row["project"]["id"], row["resource"]["global_name"])
        assert expected.setdefault(key, tags) == tags  # one resource, one set of labels
    rows = (
        warehouse_resource.get_client()
        .query(
            "SELECT DISTINCT SubAccountId, ResourceId, Tags "
            "FROM costs_current(customer_id='initech') WHERE provider = 'gcp'"
        )
        .result_rows
    )
    stored = {(project, resource): dict(tags) for project, resource, tags in rows}
    assert stored == expected
    # Unlabelled resources still carry their project's labels; labelled ones keep their own env.
    assert any(
        tags == {"cost-center": tags["cost-center"], "env": "production"}
        for tags in stored.values()
    )
    assert any("team" in tags and tags["env"] != "production" for tags in stored.values())
