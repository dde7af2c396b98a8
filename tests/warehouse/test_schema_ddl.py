"""The DDL the migrations generate, for a single server and for a cluster (no cluster runs here)."""

import re

import pytest

from cost_pipelines.warehouse import ledger, retention
from cost_pipelines.warehouse.connection import WarehouseSettings, client_settings
from cost_pipelines.warehouse.schema import (
    MIGRATIONS,
    SHARDING_KEY,
    DDLContext,
    _migrations_table,
)
from cost_pipelines.warehouse.writer import _delete_text


def all_statements(ctx: DDLContext) -> list[str]:
    return [_migrations_table(ctx)] + [s for m in MIGRATIONS for s in m.statements(ctx)]


def test_single_server_ddl_uses_plain_merge_tree_engines() -> None:
    statements = all_statements(DDLContext())
    assert not any("ON CLUSTER" in s or "Replicated" in s for s in statements)
    assert any("ENGINE = MergeTree" in s for s in statements)
    assert any("ENGINE = ReplacingMergeTree(loaded_at)" in s for s in statements)


def created(statements: list[str]) -> dict[str, str]:
    """Table or view name -> its CREATE statement."""
    names = {}
    for statement in statements:
        match = re.search(r"CREATE (?:TABLE|VIEW) IF NOT EXISTS (\w+)", statement)
        if match:
            names[match[1]] = statement
    return names


def engine_of(statement: str) -> str:
    return statement.split("ENGINE = ", 1)[1].split("\n", 1)[0].strip()


def test_cluster_ddl_runs_on_the_cluster_with_replicated_engines() -> None:
    statements = all_statements(DDLContext("finops"))
    creates = [s for s in statements if "CREATE" in s]
    assert creates and all("ON CLUSTER `finops`" in s for s in creates)
    alters = [s for s in statements if s.startswith("ALTER")]
    assert alters and all("ON CLUSTER `finops`" in s for s in alters)
    tables = created(statements)
    assert {name: engine_of(s) for name, s in tables.items() if "ENGINE" in s} == {
        # Whole on every node: one replication path for all shards, no {shard} in it.
        "schema_migrations": "ReplicatedReplacingMergeTree("
        "'/clickhouse/tables/{database}/schema_migrations', '{replica}', applied_at)",
        "exchange_rates": "ReplicatedReplacingMergeTree("
        "'/clickhouse/tables/{database}/exchange_rates', '{replica}', loaded_at)",
        # The analyses' results: small, per customer, whole on every node.
        "analytics_runs": "ReplicatedReplacingMergeTree("
        "'/clickhouse/tables/{database}/analytics_runs', '{replica}', computed_at)",
        **{
            table: f"ReplicatedMergeTree('/clickhouse/tables/{{database}}/{table}', '{{replica}}')"
            for table in (
                "cost_anomalies",
                "cost_forecasts",
                "budget_status",
                "cost_recommendations",
            )
        },
        # Sharded by customer: the rows per shard, replicated within it (server default path).
        "costs_local": "ReplicatedMergeTree",
        "cost_loads_local": "ReplicatedReplacingMergeTree(loaded_at)",
        "costs": "Distributed(`finops`, currentDatabase(), costs_local, cityHash64(customer_id))",
        "cost_loads": "Distributed(`finops`, currentDatabase(), cost_loads_local, "
        "cityHash64(customer_id))",
        # The ledger lives with the customer's rows; the history horizon is whole everywhere.
        "cost_restatements_local": "ReplicatedMergeTree",
        "cost_restatements": "Distributed(`finops`, currentDatabase(), cost_restatements_local, "
        "cityHash64(customer_id))",
        "cost_history_horizon": "ReplicatedMergeTree("
        "'/clickhouse/tables/{database}/cost_history_horizon', '{replica}')",
        # The daily sums live with the lines they sum.
        "cost_daily_local": "ReplicatedMergeTree",
        "cost_daily": "Distributed(`finops`, currentDatabase(), cost_daily_local, "
        "cityHash64(customer_id))",
    }


def test_on_a_cluster_a_customers_rows_and_pointers_share_a_shard_and_the_view_reads_them() -> None:
    tables = created(all_statements(DDLContext("finops")))
    assert "AS costs_local" in tables["costs"] and "AS cost_loads_local" in tables["cost_loads"]
    assert SHARDING_KEY == "cityHash64(customer_id)"  # one key for rows and their pointers
    view = tables["costs_current"]
    # Reads go through the Distributed table; each shard filters by its own pointers.
    assert "FROM costs\n" in view and "FROM cost_loads_local" in view
    # Every column change reaches the rows (local) and the Distributed table's structure.
    alters = [s for s in all_statements(DDLContext("finops")) if "MODIFY COLUMN" in s]
    assert [a.split()[2] for a in alters] == ["costs_local", "costs"]
    [update] = [s for s in all_statements(DDLContext("finops")) if " UPDATE " in s]
    assert update.startswith("ALTER TABLE costs_local ON CLUSTER")
    # Pointer history: the local table keeps every pointer, the Distributed one gets the column.
    history = [s for s in all_statements(DDLContext("finops")) if "published_at DateTime64" in s]
    assert [h.split()[2] for h in history] == ["cost_loads_local", "cost_loads"]
    assert "MODIFY ORDER BY" in history[0] and "MODIFY ORDER BY" not in history[1]
    as_of = tables["costs_as_of"]
    assert "FROM costs\n" in as_of and "FROM cost_loads_local" in as_of


def test_on_a_cluster_retention_deletes_from_every_shards_local_tables() -> None:
    deletes = retention._deletes("finops")
    assert [d.split()[2] for d in deletes] == [
        "costs_local",
        "cost_daily_local",
        "cost_loads_local",
        "costs_local",
        "cost_daily_local",
    ]
    assert all("ON CLUSTER `finops`" in d and "cost_loads_local" in d for d in deletes)
    assert not any("{loads:Identifier}" in d for d in deletes)


def test_one_server_has_no_local_or_distributed_tables() -> None:
    tables = created(all_statements(DDLContext()))
    assert set(tables) == {
        "schema_migrations",
        "costs",
        "cost_loads",
        "costs_current",
        "costs_as_of",
        "cost_restatements",
        "cost_history_horizon",
        "exchange_rates",
        "analytics_runs",
        "cost_anomalies",
        "cost_forecasts",
        "budget_status",
        "cost_recommendations",
        "cost_daily",
        "cost_daily_current",
        "cost_daily_as_of",
        "costs_current_resources",
        "costs_as_of_resources",
    }
    assert not any("Distributed" in s or "_local" in s for s in tables.values())


def test_on_a_cluster_each_shard_sums_its_own_lines_and_filters_by_its_own_pointers() -> None:
    statements = all_statements(DDLContext("finops"))
    [view] = [s for s in statements if "MATERIALIZED VIEW" in s]
    assert "ON CLUSTER `finops` TO cost_daily_local AS" in view
    assert "FROM costs_local)" in view
    tables = created(statements)
    for name in ("cost_daily_current", "cost_daily_as_of"):
        assert "FROM cost_daily\n" in tables[name] and "FROM cost_loads_local" in tables[name]
    for name in ("costs_current_resources", "costs_as_of_resources"):
        assert "FROM costs\n" in tables[name] and "FROM cost_loads_local" in tables[name]
    key_columns = [s for s in statements if "ADD COLUMN IF NOT EXISTS ResourceKey" in s]
    assert [s.split(" ON CLUSTER")[0] for s in key_columns] == [
        "ALTER TABLE costs_local",
        "ALTER TABLE costs",
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


def test_on_a_cluster_every_query_waits_for_its_shard_and_reads_consistent_replicas() -> None:
    on_cluster = WarehouseSettings(clickhouse_cluster="finops")
    assert client_settings(on_cluster) == {
        "insert_distributed_sync": 1,
        "insert_quorum": "auto",
        "select_sequential_consistency": 1,
    }
    assert client_settings(WarehouseSettings(clickhouse_cluster=None)) == {}


def test_on_a_cluster_the_clean_up_deletes_from_every_shards_local_rows() -> None:
    assert _delete_text(None).startswith("DELETE FROM costs IN PARTITION {partition:UInt32}")
    on_cluster = _delete_text("finops")
    assert on_cluster.startswith(
        "DELETE FROM costs_local ON CLUSTER `finops` IN PARTITION {partition:UInt32}"
    )
    # The rest of the statement, and every value in it, is bound the same way.
    assert on_cluster.split("WHERE", 1)[1] == _delete_text(None).split("WHERE", 1)[1]
    with pytest.raises(ValueError, match="CLICKHOUSE_CLUSTER"):
        _delete_text("x`; DROP TABLE costs")


def test_on_a_cluster_the_ledger_reads_one_distributed_table_and_forgets_on_every_shard() -> None:
    # The previous pointers are bound values: no Distributed subquery inside a Distributed read.
    assert "cost_loads" not in ledger.RECORD_SQL
    assert ledger._forget_text("finops").startswith(
        "DELETE FROM cost_restatements_local ON CLUSTER `finops` WHERE"
    )
