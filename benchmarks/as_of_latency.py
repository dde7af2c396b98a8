"""Read latency with and without `as_of`, over the api_latency data set, measured through HTTP.

    python -m benchmarks.as_of_latency [--lines N] [--requests R] [--restatements K]

Loads api_latency's data set (one customer, N lines over 365 days, one window per provider and
month) and measures every read of api_latency's CASES three times, R sequential requests each:
1. `current, 1 version`: without as_of, every day with one load (as api_latency measures);
2. `current, K+1 versions`: without as_of, after the last two months of every provider were
   restated K times (each restatement a new load of the same lines with other amounts; the
   superseded loads are kept for as_of, as in production until COST_RETENTION_DAYS);
3. `as_of`: the same reads as of an instant before the first restatement (the superseded
   version), answered from the kept loads.
Prints p50/p99 per read and the p50 ratios 2/1 (what keeping history costs reads that never
ask for it) and 3/2 (an as_of read against the current read on the same data).
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

from benchmarks.api_latency import CASES, CUSTOMER, lines_for, load, month_windows, start_api
from cost_api.auth import add_key
from cost_pipelines.providers import PROVIDERS
from cost_pipelines.warehouse.connection import WarehouseSettings, create_client
from cost_pipelines.warehouse.writer import CostWindow, replace_window
from tests.support.processes import start_warehouse

Timings = dict[tuple[str, str], tuple[float, float]]


def restate(port: int, total_lines: int, times: int) -> float:
    """Replace the last two month windows of every provider `times` times; seconds taken."""
    client = create_client(WarehouseSettings(warehouse_port=port))
    windows = month_windows(datetime.now(UTC).date())
    per_window = total_lines // (len(windows) * len(PROVIDERS))
    began = time.perf_counter()
    for number in range(times):
        rng = np.random.default_rng(100 + number)
        for provider in PROVIDERS:
            for window in windows[-2:]:
                replace_window(
                    client,
                    CostWindow(CUSTOMER, provider, f"{provider}-account", *window),
                    lines_for(window, per_window, rng),
                    source="benchmark",
                )
    client.close()
    return time.perf_counter() - began


def measure(base: str, token: str, requests: int, extra: dict[str, str]) -> Timings:
    out: Timings = {}
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as http:
        for endpoint, params in CASES:
            path = f"/api/v2/costs/{CUSTOMER}/all/{endpoint}"
            query = {**params, **extra}
            for _ in range(3):  # warm caches and the connection
                http.get(path, params=query, timeout=60).raise_for_status()
            timings = []
            for _ in range(requests):
                began = time.perf_counter()
                http.get(path, params=query, timeout=60).raise_for_status()
                timings.append((time.perf_counter() - began) * 1000)
            q = statistics.quantiles(timings, n=100, method="inclusive")
            label = " ".join(f"{k}={v}" for k, v in params.items()) or "(default)"
            out[endpoint, label] = (q[49], q[98])
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
            seconds = load(warehouse.port, args.lines)
            print(f"loaded {args.lines:,} lines through replace_window in {seconds:.1f} s")
            token = add_key(Path(tmp) / "keys.yaml", "benchmark", [CUSTOMER])
            api, base = start_api(warehouse.port, Path(tmp) / "keys.yaml")
            one = measure(base, token, args.requests, {})
            time.sleep(0.01)
            instant = datetime.now(UTC).isoformat().replace("+00:00", "Z")
            took = restate(warehouse.port, args.lines, args.restatements)
            print(f"restated the last two months {args.restatements} times in {took:.1f} s")
            kept = measure(base, token, args.requests, {})
            as_of = measure(base, token, args.requests, {"as_of": instant})
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
    print(f"\n{args.requests} sequential requests each, one customer, {args.lines:,} lines")


if __name__ == "__main__":
    main()
