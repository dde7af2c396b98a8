"""Insert throughput: chDB in-process versus the cost-warehouse endpoint over HTTP, same rows.

    python -m benchmarks.insert_throughput [--rows N]

Generates N rows of a 10-column cost-like table (DateTime64, Decimal(38,12), LowCardinality
strings, String), inserts them (a) into chDB in this process with `INSERT ... SELECT FROM
Python(df)` and (b) through the endpoint (a separate process) with clickhouse-connect's
insert_df and insert_arrow, each into a fresh table, and prints rows/s and endpoint/in-process.
A last line inserts the same rows pre-encoded as Native (raw_insert): the endpoint's own cost
without the client's DataFrame encoding.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from tests.support.processes import start_warehouse

TABLE_DDL = """
CREATE TABLE {name} (
    customer_id LowCardinality(String),
    ProviderName LowCardinality(String),
    ChargePeriodStart DateTime64(3, 'UTC'),
    BilledCost Decimal(38, 12),
    EffectiveCost Decimal(38, 12),
    BillingCurrency LowCardinality(String),
    ServiceName LowCardinality(String),
    RegionId LowCardinality(String),
    ResourceId String,
    SkuId String
) ENGINE = MergeTree
ORDER BY (customer_id, ProviderName, ChargePeriodStart)
"""
DECIMAL_COLUMNS = ("BilledCost", "EffectiveCost")


def cost_frame(rows: int, seed: int = 7) -> pd.DataFrame:
    """Realistic line items: a few customers/providers/services, unique resources, tiny unit
    costs (Decimal objects, as the write path hands them over)."""
    rng = np.random.default_rng(seed)
    start = np.datetime64("2026-10-01T00:00:00.000", "ms")
    micro_cents = rng.integers(1, 10**10, rows)

    def money(scale: int) -> list[Decimal]:
        return [Decimal(int(v)).scaleb(-scale) for v in micro_cents]

    services = ["AmazonEC2", "AmazonS3", "Virtual Machines", "Compute Engine", "Cloud Storage"]
    regions = ["eu-west-1", "us-east-1", "westeurope", "europe-west4", "ams"]
    return pd.DataFrame(
        {
            "customer_id": rng.choice([f"cust-{i:03d}" for i in range(40)], rows),
            "ProviderName": rng.choice(["AWS", "Azure", "GCP", "Vultr"], rows),
            "ChargePeriodStart": start + rng.integers(0, 31 * 86_400_000, rows).astype("m8[ms]"),
            "BilledCost": money(12),
            "EffectiveCost": money(11),
            "BillingCurrency": rng.choice(["USD", "EUR"], rows),
            "ServiceName": rng.choice(services, rows),
            "RegionId": rng.choice(regions, rows),
            "ResourceId": [
                f"arn:aws:ec2:eu-west-1:1234567890:instance/i-{i:017x}" for i in range(rows)
            ],
            "SkuId": [f"SKU-{v % 5000:05d}" for v in micro_cents],
        }
    )


def arrow_table(frame: pd.DataFrame) -> pa.Table:
    """The same rows as Arrow, decimals as decimal128(38, 12), times in UTC."""
    schema = pa.schema(
        [
            pa.field(name, pa.decimal128(38, 12))
            if name in DECIMAL_COLUMNS
            else pa.field(name, pa.timestamp("ms", tz="UTC"))
            if name == "ChargePeriodStart"
            else pa.field(name, pa.string())
            for name in frame.columns
        ]
    )
    return pa.Table.from_pandas(frame, schema=schema, preserve_index=False)


def in_process(frame: pd.DataFrame, data_dir: Path, repeat: int) -> float:
    """Best seconds for chDB in this process: INSERT INTO t SELECT * FROM Python(df)."""
    import chdb

    conn = chdb.connect(str(data_dir))
    try:
        conn.query(TABLE_DDL.format(name="costs"))
        df = frame  # noqa: F841 - the Python() table function finds the frame by this name
        best = float("inf")
        for _ in range(repeat):
            conn.query("TRUNCATE TABLE costs")
            started = time.perf_counter()
            conn.query("INSERT INTO costs SELECT * FROM Python(df)")
            best = min(best, time.perf_counter() - started)
            count = int(conn.query("SELECT count() FROM costs", "TabSeparated").bytes())
            assert count == len(frame), f"in-process insert wrote {count} rows"
        return best
    finally:
        conn.close()


def _best_of(
    repeat: int, rows: int, client: Any, name: str, insert: Callable[[Any, str], object]
) -> float:
    """Best seconds of `repeat` inserts into an emptied table, checking the row count each time."""
    best = float("inf")
    for _ in range(repeat):
        client.command("TRUNCATE TABLE {t:Identifier}", parameters={"t": name})
        started = time.perf_counter()
        insert(client, name)
        best = min(best, time.perf_counter() - started)
        count = client.command("SELECT count() FROM {t:Identifier}", parameters={"t": name})
        assert count == rows, f"{name}: {count} rows, expected {rows}"
    return best


def through_endpoint(
    frame: pd.DataFrame, table: pa.Table, data_dir: Path, repeat: int
) -> dict[str, float]:
    """Best seconds for each clickhouse-connect insert path against a cost-warehouse process."""
    warehouse = start_warehouse(data_dir)
    results: dict[str, float] = {}
    try:
        cases: list[tuple[str, bool | str, Callable[[Any, str], object]]] = [
            ("insert_df (lz4)", "lz4", lambda client, name: client.insert_df(name, frame)),
            ("insert_df (uncompressed)", False, lambda client, name: client.insert_df(name, frame)),
            ("insert_arrow", "lz4", lambda client, name: client.insert_arrow(name, table)),
        ]
        for number, (label, compress, insert) in enumerate(cases):
            client = warehouse.client(compress=compress)
            client.command(TABLE_DDL.format(name=f"costs_{number}"))
            results[label] = _best_of(repeat, len(frame), client, f"costs_{number}", insert)
            client.close()
        # The same rows already encoded as Native: what the endpoint itself costs (HTTP + engine),
        # without clickhouse-connect's pandas-to-Native encoding on the client side.
        client = warehouse.client(compress=False)
        native = client.raw_query("SELECT * FROM costs_0", fmt="Native")
        client.command(TABLE_DDL.format(name="costs_native"))
        results["raw_insert of pre-encoded Native"] = _best_of(
            repeat,
            len(frame),
            client,
            "costs_native",
            lambda client, name: client.raw_insert(name, None, native, fmt="Native"),
        )
        client.close()
    finally:
        warehouse.stop()
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=2, help="best of this many runs per path")
    args = parser.parse_args(argv)
    rows = args.rows

    started = time.perf_counter()
    frame = cost_frame(rows)
    table = arrow_table(frame)
    generated_s = time.perf_counter() - started
    print(f"{rows:,} rows x {len(frame.columns)} columns generated in {generated_s:.1f} s")
    load_before = os.getloadavg()[0]

    with tempfile.TemporaryDirectory(prefix="insert-bench-") as tmp:
        local_s = in_process(frame, Path(tmp) / "inproc", args.repeat)
        remote = through_endpoint(frame, table, Path(tmp) / "endpoint", args.repeat)

    local_rate = rows / local_s
    print(f"best of {args.repeat}; {os.cpu_count()} CPUs, load average {load_before:.1f} before")
    print(f"{'path':<48} {'seconds':>8} {'rows/s':>12} {'endpoint/in-process':>20}")
    local_label = "chDB in-process, INSERT SELECT FROM Python(df)"
    print(f"{local_label:<48} {local_s:8.2f} {local_rate:12,.0f}")
    for label, seconds in remote.items():
        rate = rows / seconds
        print(f"{'endpoint, ' + label:<48} {seconds:8.2f} {rate:12,.0f} {rate / local_rate:20.2f}")
    print(f"load average {os.getloadavg()[0]:.1f} after")


if __name__ == "__main__":
    main()
