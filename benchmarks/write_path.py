"""The write path against the engine's own bulk load of the same rows.

    python -m benchmarks.write_path [--lines N] [--profile FILE]

Writes one customer's generated windows through `replace_windows` as the collectors do (one
run per provider and month, one window per billing account) into a cost-warehouse endpoint,
then loads exactly the rows it stored, saved as one Parquet file, with the engine's own
`INSERT INTO ... SELECT FROM file(..., Parquet)` into a copy of the table, and prints both
rates, their ratio and the writer's peak RSS growth.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import resource
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks.dataset import Customer, Window, window_table, windows
from cost_pipelines.warehouse.connection import WarehouseSettings, create_client
from cost_pipelines.warehouse.schema import migrate
from cost_pipelines.warehouse.writer import CostWindow, replace_windows
from tests.support.processes import start_warehouse


@dataclass(frozen=True)
class WriteFigures:
    lines: int
    write_s: float
    bulk_s: float
    generate_s: float
    rss_growth_kib: float

    @property
    def write_rate(self) -> float:
        return self.lines / self.write_s

    @property
    def bulk_rate(self) -> float:
        return self.lines / self.bulk_s

    @property
    def ratio(self) -> float:
        return self.write_rate / self.bulk_rate


def _rss_kib() -> int:
    """Peak RSS of this process so far, KiB (Linux ru_maxrss)."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def collection_runs(
    customer: Customer, today: date, seed: int = 7
) -> Iterator[list[tuple[CostWindow, pd.DataFrame]]]:
    """The customer's windows (the same lines as `window_frames`) grouped as the collectors
    write them: one run per provider and month, with one window per billing account (see
    assets/collection.py). Only one run's frames are in memory at a time."""
    runs: dict[tuple[str, date], list[tuple[int, Window]]] = defaultdict(list)
    for number, window in enumerate(windows(customer, today)):
        runs[(window.provider, window.start)].append((number, window))
    for members in runs.values():
        yield [
            (
                CostWindow(w.customer_id, w.provider, w.account, w.start, w.end),
                window_table(w, customer, seed + number).to_pandas(),
            )
            for number, w in members
        ]


def write_customers(
    client: Any,
    customers: Iterable[Customer],
    today: date,
    profile: cProfile.Profile | None = None,
) -> tuple[int, float, float]:
    """(lines, seconds inside replace_windows, seconds generating) for every collection run."""
    lines, write_s, generate_s = 0, 0.0, 0.0
    for customer in customers:
        began = time.perf_counter()
        for run in collection_runs(customer, today):
            generate_s += time.perf_counter() - began
            started = time.perf_counter()
            if profile is not None:
                profile.enable()
            results = replace_windows(client, run, source="benchmark")
            if profile is not None:
                profile.disable()
            write_s += time.perf_counter() - started
            lines += sum(result.rows_written for result in results)
            began = time.perf_counter()
    return lines, write_s, generate_s


def bulk_load(client: Any, spool: Path) -> tuple[int, float]:
    """(rows, seconds) of the engine loading the stored rows from Parquet into a copy of the
    table: the same rows, types and sort order, none of our code in the way."""
    parquet = spool / "costs.parquet"
    with parquet.open("wb") as out:
        stream = client.raw_stream("SELECT * FROM costs", fmt="Parquet")
        for chunk in stream:
            out.write(chunk)
    client.command("DROP TABLE IF EXISTS costs_bulk")
    client.command("CREATE TABLE costs_bulk AS costs")
    started = time.perf_counter()
    client.command(
        "INSERT INTO costs_bulk SELECT * FROM file({path:String}, 'Parquet')",
        parameters={"path": str(parquet)},
    )
    seconds = time.perf_counter() - started
    rows = int(client.query("SELECT count() FROM costs_bulk").result_rows[0][0])
    client.command("DROP TABLE costs_bulk")
    parquet.unlink()
    return rows, seconds


def measure(
    port: int,
    database: str,
    customers: list[Customer],
    spool: Path,
    profile: cProfile.Profile | None = None,
) -> WriteFigures:
    client = create_client(WarehouseSettings(warehouse_port=port, clickhouse_database=database))
    migrate(client)
    today = datetime.now(UTC).date()
    rss_before = _rss_kib()
    lines, write_s, generate_s = write_customers(client, customers, today, profile)
    rss_growth = _rss_kib() - rss_before
    stored = int(client.query("SELECT count() FROM costs").result_rows[0][0])
    if stored < lines:
        raise RuntimeError(f"the write path stored {stored} of {lines} lines")
    bulk_rows, bulk_s = bulk_load(client, spool)
    client.close()
    # Rates over the rows each side loaded (the stored set may still hold superseded rows of
    # an earlier run of the same database; there is none in a fresh one).
    return WriteFigures(lines, write_s, bulk_s * lines / bulk_rows, generate_s, rss_growth)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=500_000)
    parser.add_argument("--profile", type=Path, help="write a cProfile of the write path here")
    args = parser.parse_args(argv)
    profile = cProfile.Profile() if args.profile else None
    with tempfile.TemporaryDirectory(prefix="write-bench-") as tmp:
        warehouse = start_warehouse(Path(tmp) / "warehouse")
        try:
            load = os.getloadavg()[0]
            figures = measure(
                warehouse.port,
                "default",
                [Customer("bench", args.lines)],
                Path(tmp),
                profile=profile,
            )
        finally:
            warehouse.stop()
    print(f"{os.cpu_count()} CPUs, load average {load:.1f} before, {os.getloadavg()[0]:.1f} after")
    ratio = figures.ratio
    rows = [
        ("replace_windows (a run per provider, month)", figures.write_s, figures.write_rate, ratio),
        ("engine: INSERT SELECT FROM file(Parquet)", figures.bulk_s, figures.bulk_rate, 1.0),
    ]
    print(f"{'path':<44} {'seconds':>8} {'rows/s':>10} {'ratio':>6}")
    for label, seconds, rate, ratio in rows:
        print(f"{label:<44} {seconds:8.2f} {rate:10,.0f} {ratio:6.2f}")
    print(f"peak RSS growth while writing: {figures.rss_growth_kib / 1024:.0f} MiB")
    if profile is not None:
        profile.dump_stats(str(args.profile))
        pstats.Stats(str(args.profile)).sort_stats("cumulative").print_stats(25)


if __name__ == "__main__":
    main()
