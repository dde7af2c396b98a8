"""The by-resource read groups lines by their stored 64-bit ResourceKey (migration 8) and checks
every group it returns against the strings: resources that share a key, and a cut at `limit`
between equal amounts, still get exactly the answer of grouping by the strings."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pandas as pd
from clickhouse_connect.driver.client import Client

from cost_api.params import CostMetric, CostQuery, Period
from cost_api.readers.conversion import ConversionRequest
from cost_api.readers.cost_reader import (
    BY_RESOURCE_SQL,
    BY_RESOURCE_TOP_SQL,
    NAMED_MAX,
    CostReader,
)
from cost_api.schemas.costs import ResourceCosts
from cost_pipelines.warehouse.connection import WarehouseSettings, create_client
from cost_pipelines.warehouse.schema import MIGRATIONS, RESOURCE_KEY, DDLContext, migrate
from cost_pipelines.warehouse.writer import CostWindow, replace_window
from tests.support.processes import WarehouseProcess

START = date(2026, 10, 1)
PERIOD = Period(START, START + timedelta(days=7))


def _write(client: Client, customer: str, lines: list[tuple[str, str, str, str]]) -> None:
    """(resource, service, currency, billed) lines on the period's first day, one AWS account
    per currency."""
    for currency in sorted({line[2] for line in lines}):
        mine = [line for line in lines if line[2] == currency]
        frame = pd.DataFrame(
            {
                "ChargePeriodStart": [pd.Timestamp(START)] * len(mine),
                "ResourceId": [r for r, _, _, _ in mine],
                "ResourceName": [f"name of {r}" if r else "" for r, _, _, _ in mine],
                "ServiceName": [s for _, s, _, _ in mine],
                "BillingCurrency": [c for _, _, c, _ in mine],
                "BilledCost": [b for _, _, _, b in mine],
            }
        )
        window = CostWindow(customer, "aws", f"account-{currency}", PERIOD.start, PERIOD.end)
        replace_window(client, window, frame, source="test")


class Recorded(CostReader):
    """The API's reader, noting the texts it runs; it groups by key from the first line."""

    keyed_min_lines = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.texts: list[str] = []

    def rows(self, sql: str, parameters: Mapping[str, Any]) -> Sequence[Sequence[Any]]:
        self.texts.append(sql)
        return super().rows(sql, parameters)


def _read(
    client: Client, customer: str, limit: int, convert: ConversionRequest | None = None
) -> tuple[list[tuple[str, ...]], Recorded, ResourceCosts]:
    reader = Recorded(client, CostQuery(customer, "all", CostMetric.billed), convert)
    answer = reader.get_cost_by_resource(PERIOD, limit=limit)
    rows = [
        (r.resource_id, r.service_name, r.currency, str(r.amount), str(r.share_percent))
        for r in answer.data
    ]
    return rows, reader, answer


def _exact(client: Client, customer: str, limit: int) -> list[tuple[str, ...]]:
    """The same read by the exact text alone (grouping by the strings)."""
    reader = CostReader(client, CostQuery(customer, "all", CostMetric.billed))
    values = reader._bind(PERIOD, limit=limit)
    rows = client.query(BY_RESOURCE_SQL[False], parameters=values).result_rows
    return [(r[1], r[4], r[2], str(r[5])) for r in rows]


def _set_key(client: Client, resource: str, key: int) -> None:
    client.command(
        "ALTER TABLE costs UPDATE ResourceKey = {key:UInt64} WHERE ResourceId = {r:String} "
        "SETTINGS mutations_sync = 1",
        parameters={"key": key, "r": resource},
    )


def _key(client: Client, resource: str) -> int:
    return int(
        client.query(
            "SELECT any(ResourceKey) FROM costs WHERE ResourceId = {r:String}",
            parameters={"r": resource},
        ).result_rows[0][0]
    )


def test_the_read_groups_by_key_and_answers_like_the_strings(client: Client) -> None:
    lines = [
        ("vm-1", "EC2", "USD", "5.5"),
        ("vm-1", "EC2", "USD", "-1.5"),  # a credit on the same resource
        ("vm-2", "EC2", "USD", "3"),
        ("", "Support", "USD", "2"),  # without a resource: its own row per service
        ("", "Tax", "USD", "1"),
        ("bucket", "S3", "EUR", "7"),
    ]
    _write(client, "keys", lines)
    rows, reader, answer = _read(client, "keys", limit=3)
    assert [r[:4] for r in rows] == [
        ("bucket", "S3", "EUR", "7.000000000000"),
        ("vm-1", "EC2", "USD", "4.000000000000"),
        ("vm-2", "EC2", "USD", "3.000000000000"),
        ("", "Support", "USD", "2.000000000000"),
    ]
    assert [r[:4] for r in rows] == _exact(client, "keys", limit=3)
    # The shares are of the currency's gross, over every resource (Tax too).
    usd = next(t for t in answer.totals if t.currency == "USD")
    assert (usd.amount, usd.gross_cost, usd.credits) == (
        Decimal(10),
        Decimal("11.5"),
        Decimal("-1.5"),
    )
    assert BY_RESOURCE_TOP_SQL[False] in reader.texts
    assert BY_RESOURCE_SQL[False] not in reader.texts
    stored = client.query(
        f"SELECT countIf(ResourceKey = {RESOURCE_KEY}), count() FROM costs"
    ).result_rows
    assert stored == [(6, 6)]


def test_two_resources_sharing_a_key_stay_two_rows(client: Client) -> None:
    _write(client, "shared", [("a", "EC2", "USD", "5"), ("b", "EC2", "USD", "3")])
    _set_key(client, "b", _key(client, "a"))
    rows, reader, _ = _read(client, "shared", limit=10)
    assert [r[:4] for r in rows] == [
        ("a", "EC2", "USD", "5.000000000000"),
        ("b", "EC2", "USD", "3.000000000000"),
    ]
    assert BY_RESOURCE_SQL[False] in reader.texts  # the strings decided


def test_two_keys_mixed_with_their_currencies_into_one_group_stay_two_rows(
    client: Client,
) -> None:
    _write(client, "mixed", [("a", "EC2", "USD", "5"), ("b", "EC2", "EUR", "3")])
    # b's key mixed with EUR's hash equals a's mixed with USD's, though the keys differ.
    [(usd, eur)] = client.query("SELECT cityHash64('USD'), cityHash64('EUR')").result_rows
    _set_key(client, "b", _key(client, "a") ^ usd ^ eur)
    rows, reader, _ = _read(client, "mixed", limit=10)
    assert [r[:4] for r in rows] == [
        ("b", "EC2", "EUR", "3.000000000000"),
        ("a", "EC2", "USD", "5.000000000000"),
    ]
    assert BY_RESOURCE_SQL[False] in reader.texts
    # Converted, both are in USD: their keys no longer mix into one group.
    client.insert(
        "exchange_rates",
        [[START + timedelta(days=d), "EUR", "USD", Decimal("1.25"), "test"] for d in range(7)],
        column_names=["rate_date", "base", "currency", "rate", "source"],
    )
    rows, reader, _ = _read(client, "mixed", limit=10, convert=ConversionRequest("USD"))
    assert [r[:4] for r in rows] == [
        ("a", "EC2", "USD", "5.000000000000"),
        ("b", "EC2", "USD", "3.750000000000"),
    ]
    assert BY_RESOURCE_SQL[True] not in reader.texts


def test_a_cut_between_equal_amounts_keeps_them_in_resource_order(client: Client) -> None:
    _write(client, "ties", [(r, "EC2", "USD", "4") for r in ("c", "a", "d", "b")])
    rows, reader, _ = _read(client, "ties", limit=2)
    assert [r[0] for r in rows] == ["a", "b"]
    assert [r[:4] for r in rows] == _exact(client, "ties", limit=2)
    assert BY_RESOURCE_SQL[False] in reader.texts
    # Equal amounts inside the kept rows need no strings: their order is by resource.
    rows, reader, _ = _read(client, "ties", limit=4)
    assert [r[0] for r in rows] == ["a", "b", "c", "d"]
    assert BY_RESOURCE_SQL[False] not in reader.texts


def test_migration_8_stores_the_key_of_lines_written_before_it(
    warehouse: WarehouseProcess, database: str
) -> None:
    client = create_client(
        WarehouseSettings(warehouse_port=warehouse.port, clickhouse_database=database)
    )
    try:
        migrate(client)
        client.command("DELETE FROM schema_migrations WHERE version = 8")
        for view in ("costs_current_resources", "costs_as_of_resources"):
            client.command(f"DROP VIEW {view}")
        client.command("ALTER TABLE costs DROP COLUMN ResourceKey")
        _write(client, "before", [("vm", "EC2", "USD", "1"), ("", "Tax", "USD", "2")])
        assert migrate(client) == [8]
        [migration] = [m for m in MIGRATIONS if m.version == 8]
        assert len(migration.statements(DDLContext())) == 4
        # Stored (not computed on read): the parts hold the column.
        rows = client.query(
            f"SELECT ResourceId, ResourceKey = {RESOURCE_KEY} FROM costs ORDER BY ResourceId"
        ).result_rows
        assert rows == [("", True), ("vm", True)]
        columns = client.query(
            "SELECT sum(rows) FROM system.parts_columns WHERE database = currentDatabase() "
            "AND table = 'costs' AND column = 'ResourceKey' AND active"
        ).result_rows
        assert columns == [(2,)]
        answer, _, _ = _read(client, "before", limit=5)
        assert [r[:4] for r in answer] == [
            ("", "Tax", "USD", "2.000000000000"),
            ("vm", "EC2", "USD", "1.000000000000"),
        ]
    finally:
        client.close()


def test_below_keyed_min_lines_the_exact_text_answers_alone(client: Client) -> None:
    _write(client, "small", [("a", "EC2", "USD", "5"), ("b", "EC2", "USD", "3")])
    reader = Recorded(client, CostQuery("small", "all", CostMetric.billed))
    reader.keyed_min_lines = 3
    assert [r.resource_id for r in reader.get_cost_by_resource(PERIOD, limit=5).data] == ["a", "b"]
    assert BY_RESOURCE_SQL[False] in reader.texts
    assert BY_RESOURCE_TOP_SQL[False] not in reader.texts
    reader = Recorded(client, CostQuery("small", "all", CostMetric.billed))
    reader.keyed_min_lines = 2
    assert [r.resource_id for r in reader.get_cost_by_resource(PERIOD, limit=5).data] == ["a", "b"]
    assert BY_RESOURCE_SQL[False] not in reader.texts


def test_past_the_groups_it_can_name_the_read_groups_by_the_strings(client: Client) -> None:
    count = NAMED_MAX + 1
    _write(client, "many", [(f"vm-{i:05}", "EC2", "USD", str(count - i)) for i in range(count)])
    rows, reader, _ = _read(client, "many", limit=count)
    assert len(rows) == count and rows[0][:4] == ("vm-00000", "EC2", "USD", f"{count}.000000000000")
    assert BY_RESOURCE_SQL[False] in reader.texts
    rows, reader, _ = _read(client, "many", limit=NAMED_MAX)
    assert len(rows) == NAMED_MAX and rows[-1][0] == f"vm-{NAMED_MAX - 1:05}"
    assert BY_RESOURCE_SQL[False] not in reader.texts
