"""Bytes a stored cost line takes, for sizing a ClickHouse deployment (docs/scaling.md).

    python -m benchmarks.storage [--lines N]

Writes one customer's N benchmark lines (benchmarks/dataset.py: 365 days, 4 providers, 20k
resources, 40 services, 2 currencies, amounts with 10 random decimals, so the amounts compress
worse than real bills do) through the write path into a fresh embedded warehouse, merges the
parts, and prints the compressed and uncompressed bytes per line of `costs` and `cost_loads`
from `system.parts`, and per column of `costs` from `system.columns`.
"""

from __future__ import annotations

import argparse
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.dataset import Customer, window_frames
from cost_pipelines.warehouse.connection import WarehouseSettings, create_client
from cost_pipelines.warehouse.schema import migrate
from cost_pipelines.warehouse.writer import CostWindow, replace_window
from tests.support.processes import start_warehouse

PARTS_SQL = """
SELECT table, sum(rows), sum(data_compressed_bytes), sum(data_uncompressed_bytes)
FROM system.parts
WHERE database = currentDatabase() AND active AND table IN ('costs', 'cost_loads')
GROUP BY table ORDER BY table
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--lines", type=int, default=500_000)
    args = parser.parse_args(argv)
    customer = Customer("sizing", args.lines)
    today = datetime.now(UTC).date()
    with tempfile.TemporaryDirectory(prefix="storage-") as tmp:
        warehouse = start_warehouse(Path(tmp) / "warehouse")
        try:
            client = create_client(WarehouseSettings(warehouse_port=warehouse.port))
            migrate(client)
            for window, frame in window_frames(customer, today):
                replace_window(
                    client,
                    CostWindow(
                        window.customer_id,
                        window.provider,
                        window.account,
                        window.start,
                        window.end,
                    ),
                    frame,
                    source="benchmark",
                )
            for table in ("costs", "cost_loads"):
                client.command(f"OPTIMIZE TABLE {table} FINAL")
            print(f"{args.lines:,} lines of one customer over 365 days, parts merged")
            print(f"{'table':<12}{'rows':>12}{'compressed B/row':>18}{'uncompressed B/row':>20}")
            for table, rows, packed, raw in client.query(PARTS_SQL).result_rows:
                print(f"{table:<12}{rows:>12,}{packed / rows:>18.1f}{raw / rows:>20.1f}")
            client.close()
        finally:
            warehouse.stop()


if __name__ == "__main__":
    main()
