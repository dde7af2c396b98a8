"""Read latency with and without `as_of`, on api_latency's data set, measured through HTTP.

    python -m benchmarks.as_of_latency [--lines N] [--requests R] [--restatements K]

Writes api_latency's data set (N lines over 365 days, one window per provider and month) for two
customers of the same size: `bench-current`, loaded once, and `bench-restated`, whose last two
months of every provider are then restated K times (each a new load of as many lines with other
amounts, so every day changes and is stored again: a day collected again unchanged would not
be; the superseded loads are kept for as_of, as in production until COST_RETENTION_DAYS).
Then every read of api_latency's CASES is asked R times in turn as
1. `current, 1 version`: bench-current without as_of (what api_latency measures);
2. `current, K+1 versions`: bench-restated without as_of;
3. `as_of`: bench-restated as of an instant before its first restatement (the superseded
   version, answered from the kept loads),
interleaved, so the three see the same load on the machine. Prints p50/p99 of each and the p50
ratios 2/1 (what keeping history costs reads that never ask for it) and 3/2 (an as_of read
against the current read of the same data).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np

from benchmarks.api_latency import CASES, lines_for, month_windows, start_api
from cost_api.auth import add_key
from cost_pipelines.providers import PROVIDERS
from cost_pipelines.warehouse.connection import WarehouseSettings, create_client
from cost_pipelines.warehouse.schema import migrate
from cost_pipelines.warehouse.writer import CostWindow, replace_window
from tests.support.processes import start_warehouse

Timings = dict[tuple[str, str], tuple[float, float]]
CURRENT, RESTATED = "bench-current", "bench-restated"


def write(port: int, customer: str, total_lines: int, windows: slice, seed: int) -> float:
    """Replace `windows` of month_windows for every provider of `customer`; seconds taken."""
    client = create_client(WarehouseSettings(warehouse_port=port))
    migrate(client)
    months = month_windows(datetime.now(UTC).date())
    per_window = total_lines // (len(months) * len(PROVIDERS))
    rng = np.random.default_rng(seed)
    began = time.perf_counter()
    for provider in PROVIDERS:
        for window in months[windows]:
            replace_window(
                client,
                CostWindow(customer, provider, f"{provider}-account", *window),
                lines_for(window, per_window, rng),
                source="benchmark",
            )
    client.close()
    return time.perf_counter() - began


def quantiles(timings: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(timings, n=100, method="inclusive")
    return q[49], q[98]


def measure(base: str, token: str, requests: int, instant: str) -> list[Timings]:
    """Per variant (current 1 version, current K+1 versions, as_of), p50/p99 ms per case."""
    variants = [(CURRENT, {}), (RESTATED, {}), (RESTATED, {"as_of": instant})]
    out: list[Timings] = [{}, {}, {}]
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as http:
        for endpoint, params in CASES:
            timings: list[list[float]] = [[], [], []]
            for attempt in range(requests + 3):  # the first 3 warm caches and the connection
                for number, (customer, extra) in enumerate(variants):
                    path = f"/api/v2/costs/{customer}/all/{endpoint}"
                    began = time.perf_counter()
                    http.get(path, params={**params, **extra}, timeout=60).raise_for_status()
                    if attempt >= 3:
                        timings[number].append((time.perf_counter() - began) * 1000)
            label = " ".join(f"{k}={v}" for k, v in params.items()) or "(default)"
            for number in range(3):
                out[number][endpoint, label] = quantiles(timings[number])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--restatements", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="as-of-latency-") as tmp:
        warehouse = start_warehouse(Path(tmp) / "warehouse")
        api = None
        try:
            every = slice(None)
            for customer in (CURRENT, RESTATED):
                took = write(warehouse.port, customer, args.lines, every, seed=7)
                print(f"{customer}: {args.lines:,} lines through replace_window in {took:.1f} s")
            time.sleep(0.01)
            instant = datetime.now(UTC).isoformat().replace("+00:00", "Z")
            took = 0.0
            for number in range(args.restatements):
                took += write(warehouse.port, RESTATED, args.lines, slice(-2, None), 100 + number)
            print(f"{RESTATED}: last two months restated {args.restatements} times in {took:.1f} s")
            client = create_client(WarehouseSettings(warehouse_port=warehouse.port))
            client.command("OPTIMIZE TABLE costs FINAL")  # as api_latency: merged parts
            client.close()
            token = add_key(Path(tmp) / "keys.yaml", "benchmark", [CURRENT, RESTATED])
            api, base = start_api(warehouse.port, Path(tmp) / "keys.yaml")
            load_before = os.getloadavg()[0]
            one, kept, as_of = measure(base, token, args.requests, instant)
            load_after = os.getloadavg()[0]
        finally:
            if api is not None and api.poll() is None:
                os.kill(api.pid, signal.SIGTERM)
                api.wait(10)
            warehouse.stop()
    versions = args.restatements + 1
    print(
        f"\n{'endpoint':<12} {'parameters':<22} {'1 version':>15} {f'{versions} versions':>15}"
        f" {'as_of':>15} {'kept/1':>7} {'as_of/kept':>10}"
    )
    print(f"{'':<35} {'p50 / p99 ms':>15} {'p50 / p99 ms':>15} {'p50 / p99 ms':>15}")
    for key in one:
        cells = [f"{t[key][0]:.1f} / {t[key][1]:.1f}" for t in (one, kept, as_of)]
        print(
            f"{key[0]:<12} {key[1]:<22} {cells[0]:>15} {cells[1]:>15} {cells[2]:>15} "
            f"{kept[key][0] / one[key][0]:>6.2f}x {as_of[key][0] / kept[key][0]:>9.2f}x"
        )
    print(
        f"\n{args.requests} requests per variant, interleaved, {args.lines:,} lines per customer; "
        f"load average {load_before:.1f} before, {load_after:.1f} after"
    )


if __name__ == "__main__":
    main()
