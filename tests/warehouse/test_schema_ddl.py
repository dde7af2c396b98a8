"""The DDL the migrations generate, for a single server and for a cluster (no cluster runs here)."""

import pytest

from cost_pipelines.warehouse.schema import MIGRATIONS, DDLContext, _migrations_table


def all_statements(ctx: DDLContext) -> list[str]:
    return [_migrations_table(ctx)] + [s for m in MIGRATIONS for s in m.statements(ctx)]


def test_single_server_ddl_uses_plain_merge_tree_engines() -> None:
    statements = all_statements(DDLContext())
    assert not any("ON CLUSTER" in s or "Replicated" in s for s in statements)
    assert any("ENGINE = MergeTree" in s for s in statements)
    assert any("ENGINE = ReplacingMergeTree(loaded_at)" in s for s in statements)


def test_cluster_ddl_runs_on_the_cluster_with_replicated_engines() -> None:
    statements = all_statements(DDLContext("finops"))
    creates = [s for s in statements if "CREATE" in s]
    assert creates and all("ON CLUSTER `finops`" in s for s in creates)
    engines = [s.split("ENGINE = ", 1)[1].split("\n", 1)[0] for s in creates if "ENGINE" in s]
    assert engines == [
        "ReplicatedReplacingMergeTree(applied_at)",
        "ReplicatedMergeTree",
        "ReplicatedReplacingMergeTree(loaded_at)",
        "ReplicatedReplacingMergeTree(loaded_at)",  # exchange_rates
        "ReplicatedReplacingMergeTree(computed_at)",  # analytics_runs
        "ReplicatedMergeTree",  # cost_anomalies
        "ReplicatedMergeTree",  # cost_forecasts
        "ReplicatedMergeTree",  # budget_status
    ]


def test_costs_table_is_ordered_for_per_customer_reads() -> None:
    costs = next(
        s
        for m in MIGRATIONS
        for s in m.statements(DDLContext())
        if "TABLE IF NOT EXISTS costs" in s
    )
    order_by = costs.split("ORDER BY", 1)[1].strip()
    assert order_by.startswith("(customer_id, provider, ChargePeriodStart")


@pytest.mark.parametrize("name", ["a b", "x`; DROP TABLE costs", "", "1cluster"])
def test_a_malformed_cluster_name_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="CLICKHOUSE_CLUSTER"):
        DDLContext(name)
