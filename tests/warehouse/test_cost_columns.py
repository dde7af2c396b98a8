"""What the write path stores for FOCUS columns a source leaves empty, and migration 2."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pandas as pd
import pytest
from clickhouse_connect.driver.client import Client

from cost_pipelines.warehouse.connection import WarehouseSettings, create_client
from cost_pipelines.warehouse.schema import MIGRATIONS, DDLContext, migrate
from cost_pipelines.warehouse.writer import CostWindow, InvalidCostRows, replace_window
from tests.support.processes import WarehouseProcess

OCTOBER = (date(2026, 10, 1), date(2026, 10, 8))


def _stored(client: Client, customer_id: str, columns: str) -> list[tuple[object, ...]]:
    return client.query(
        f"SELECT {columns} FROM costs_current(customer_id={{c:String}}) "
        "ORDER BY ChargePeriodStart, BilledCost",
        parameters={"c": customer_id},
    ).result_rows


def test_empty_cells_of_a_csv_export_are_null_and_a_tax_row_without_quantity_is_stored(
    client: Client,
) -> None:
    rows = pd.DataFrame(
        {
            "ChargePeriodStart": ["2026-10-02", "2026-10-02"],
            "BilledCost": ["10", "0.8"],
            "ListCost": ["12", ""],
            "ContractedCost": ["11", " "],
            "PricingQuantity": ["24", ""],
            "ChargeCategory": ["Usage", "Tax"],
            "ChargeClass": ["", ""],
            "BillingCurrency": ["USD", "USD"],
        }
    )
    replace_window(client, CostWindow("csv-nulls", "aws", "1", *OCTOBER), rows, source="test")
    assert _stored(
        client, "csv-nulls", "BilledCost, ListCost, ContractedCost, PricingQuantity"
    ) == [
        (Decimal("0.8"), None, None, None),
        (Decimal("10"), Decimal("12"), Decimal("11"), Decimal("24")),
    ]
    assert _stored(client, "csv-nulls", "ChargeClass") == [(None,), (None,)]


def test_a_line_without_billed_cost_is_refused_naming_row_and_column(client: Client) -> None:
    rows = pd.DataFrame(
        {"ChargePeriodStart": ["2026-10-02"], "BilledCost": [""], "BillingCurrency": ["USD"]}
    )
    with pytest.raises(InvalidCostRows, match="row 0: BilledCost is missing"):
        replace_window(client, CostWindow("no-billed", "aws", "1", *OCTOBER), rows, source="t")


def test_amounts_are_rounded_half_even_to_the_stored_scale_so_totals_match_the_store(
    client: Client,
) -> None:
    rows = pd.DataFrame(
        {
            "ChargePeriodStart": ["2026-10-02"] * 3,
            "BilledCost": ["0.0000000000005", "0.0000000000015", "1.0000000000025"],
            "BillingCurrency": ["USD"] * 3,
        }
    )
    result = replace_window(
        client, CostWindow("rounding", "aws", "1", *OCTOBER), rows, source="test"
    )
    stored = sum(row[0] for row in _stored(client, "rounding", "BilledCost"))
    assert result.billed_by_currency == {"USD": Decimal("1.000000000004")} == {"USD": stored}


def test_every_line_of_a_billing_period_that_has_not_ended_is_estimated(client: Client) -> None:
    today = datetime.now(UTC).date()
    closed_day = today.replace(day=1) - timedelta(days=1)
    rows = pd.DataFrame(
        {
            "ChargePeriodStart": [closed_day.isoformat(), today.isoformat()],
            "BilledCost": ["1", "2"],
            "BillingCurrency": ["USD", "USD"],
            "x_Estimated": [False, False],
        }
    )
    window = CostWindow("open-period", "gcp", "1", closed_day, today + timedelta(days=1))
    replace_window(client, window, rows, source="test")
    assert _stored(client, "open-period", "BilledCost, x_Estimated") == [
        (Decimal("1"), False),
        (Decimal("2"), True),
    ]


def test_a_spread_charge_keeps_its_whole_period_and_its_provider_charge_type(
    client: Client,
) -> None:
    rows = pd.DataFrame(
        {
            "ChargePeriodStart": ["2026-10-01", "2026-10-02"],
            "BilledCost": ["1.5", "1.5"],
            "BillingCurrency": ["USD", "USD"],
            "x_ChargeType": ["Fee", "Fee"],
            "x_SpreadPeriodStart": ["2026-10-01T00:00:00Z"] * 2,
            "x_SpreadPeriodEnd": ["2026-10-03T00:00:00Z"] * 2,
        }
    )
    replace_window(client, CostWindow("spread", "vultr", "1", *OCTOBER), rows, source="test")
    start, end = datetime(2026, 10, 1), datetime(2026, 10, 3)
    assert _stored(client, "spread", "x_ChargeType, x_SpreadPeriodStart, x_SpreadPeriodEnd") == [
        ("Fee", start, end),
        ("Fee", start, end),
    ]


def test_migration_2_clears_list_and_contracted_cost_copied_from_billed_for_cost_explorer(
    warehouse: WarehouseProcess, database: str
) -> None:
    client = create_client(
        WarehouseSettings(warehouse_port=warehouse.port, clickhouse_database=database)
    )
    try:
        client.command(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version UInt32, name String, "
            "applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) ENGINE = MergeTree ORDER BY version"
        )
        for statement in MIGRATIONS[0].statements(DDLContext()):
            client.command(statement)
        client.insert("schema_migrations", [[1, "v1"]], column_names=["version", "name"])
        client.command(
            "INSERT INTO costs (customer_id, provider, ChargePeriodStart, BilledCost, "
            "EffectiveCost, ListCost, ContractedCost, BillingCurrency, source) VALUES "
            "('acme', 'aws', '2026-10-01', 5, 4, 5, 5, 'USD', 'aws_cost_explorer'), "
            "('acme', 'vultr', '2026-10-01', 3, 3, 3.5, 3, 'USD', 'vultr_billing')"
        )
        assert migrate(client)[0] == 2  # the later migrations follow
        rows = client.query(
            "SELECT provider, EffectiveCost, ListCost, ContractedCost FROM costs ORDER BY provider"
        ).result_rows
        assert rows == [
            ("aws", Decimal("4"), None, None),
            ("vultr", Decimal("3"), Decimal("3.5"), Decimal("3")),
        ]
    finally:
        client.close()
