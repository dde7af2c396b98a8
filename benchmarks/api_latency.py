"""Latency of the cost read endpoints over ~1 M lines of one customer, measured through HTTP.

    python -m benchmarks.api_latency [--lines N] [--requests R]

Starts a cost-warehouse endpoint on a temporary directory, writes N lines for one customer
through the write path (replace_window, one window per provider and month), starts the API with
uvicorn on a free port, and prints p50/p99 of R sequential requests per endpoint and period.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from cost_api.auth import add_key
from cost_pipelines.providers import PROVIDERS
from cost_pipelines.warehouse.connection import WarehouseSettings, create_client
from cost_pipelines.warehouse.schema import migrate
from cost_pipelines.warehouse.writer import CostWindow, replace_window
from tests.support.processes import start_warehouse

CUSTOMER = "bench-customer"
HISTORY_DAYS = 365
SERVICES = [("Compute", "vm"), ("Storage", "bucket"), ("Databases", "db"), ("Networking", "")]


def month_windows(today: date) -> list[tuple[date, date]]:
    """Calendar-month windows covering the last HISTORY_DAYS days up to today."""
    start, end = today - timedelta(days=HISTORY_DAYS - 1), today + timedelta(days=1)
    windows, cursor = [], start
    while cursor < end:
        after = min((cursor.replace(day=1) + timedelta(days=32)).replace(day=1), end)
        windows.append((cursor, after))
        cursor = after
    return windows


def lines_for(window: tuple[date, date], count: int, rng: np.random.Generator) -> pd.DataFrame:
    days = (window[1] - window[0]).days
    base = np.datetime64(window[0].isoformat(), "s")
    offsets = rng.integers(0, days * 24, count).astype("timedelta64[h]")
    cents = rng.integers(1, 10**9, count)
    kinds = rng.integers(0, len(SERVICES), count)
    resources = rng.integers(0, 5000, count)
    category = [SERVICES[k][0] for k in kinds]
    return pd.DataFrame(
        {
            "ChargePeriodStart": pd.to_datetime(base + offsets, utc=True),
            "BilledCost": [f"{c / 10**7:.7f}" for c in cents],
            "EffectiveCost": [f"{c * 9 / 10**8:.8f}" for c in cents],
            "ListCost": [f"{c * 12 / 10**8:.8f}" for c in cents],
            "ContractedCost": [f"{c / 10**7:.7f}" for c in cents],
            "BillingCurrency": np.where(kinds == 3, "EUR", "USD"),
            "ServiceName": [f"{c} service" for c in category],
            "ServiceCategory": category,
            "ResourceId": [
                f"{SERVICES[k][1]}-{r}" if SERVICES[k][1] else ""
                for k, r in zip(kinds, resources, strict=True)
            ],
            "RegionId": rng.choice(["us-east-1", "eu-west-1", "europe-west4"], count),
            "ChargeCategory": "Usage",
        }
    )


def load(port: int, total_lines: int) -> float:
    """Write the lines through replace_window; returns seconds taken."""
    client = create_client(WarehouseSettings(warehouse_port=port))
    migrate(client)
    windows = month_windows(datetime.now(UTC).date())
    per_window = total_lines // (len(windows) * len(PROVIDERS))
    rng = np.random.default_rng(7)
    began = time.perf_counter()
    for provider in PROVIDERS:
        for window in windows:
            frame = lines_for(window, per_window, rng)
            t0 = time.perf_counter()
            replace_window(
                client,
                CostWindow(CUSTOMER, provider, f"{provider}-account", *window),
                frame,
                source="benchmark",
            )
            took = time.perf_counter() - t0
            print(f"  {provider} {window[0]}: {len(frame):,} lines in {took:.1f} s")
    client.command("OPTIMIZE TABLE costs FINAL")
    client.close()
    return time.perf_counter() - began


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_api(
    warehouse_port: int,
    keys_file: Path,
    extra_env: dict[str, str] | None = None,
    timeout_s: float = 30,
) -> tuple[subprocess.Popen[bytes], str]:
    """uvicorn serving the API on a free port against the embedded warehouse, once it answers."""
    port = free_port()
    env = {
        **os.environ,
        "WAREHOUSE_PORT": str(warehouse_port),
        "API_KEYS_FILE": str(keys_file),
        # One record per request would interleave with the figures: errors only.
        "LOG_LEVEL": "ERROR",
        **(extra_env or {}),
    }
    env.pop("CLICKHOUSE_URL", None)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "cost_api.main:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{base}/openapi.json", timeout=1)
            return process, base
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"the API did not start within {timeout_s:.0f} s")


CASES: list[tuple[str, dict[str, str | int]]] = [
    ("metrics", {"limit": 100}),
    ("metrics", {"limit": 100, "days": 365}),
    ("latest", {}),
    ("trends", {"group_by": "day"}),
    ("trends", {"group_by": "month", "days": 365}),
    ("by-resource", {"limit": 10}),
    ("by-resource", {"limit": 10, "days": 365}),
    ("by-type", {}),
    ("by-type", {"days": 365}),
    ("total", {}),
    ("total", {"days": 365}),
]


def measure(base: str, token: str, requests: int) -> list[tuple[str, str, float, float]]:
    results = []
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as http:
        for endpoint, params in CASES:
            path = f"/api/v2/costs/{CUSTOMER}/all/{endpoint}"
            for _ in range(3):  # warm caches and the connection
                http.get(path, params=params, timeout=60).raise_for_status()
            timings = []
            for _ in range(requests):
                began = time.perf_counter()
                http.get(path, params=params, timeout=60).raise_for_status()
                timings.append((time.perf_counter() - began) * 1000)
            q = statistics.quantiles(timings, n=100, method="inclusive")
            default = "(newest day)" if endpoint == "latest" else "days=30 (default)"
            label = " ".join(f"{k}={v}" for k, v in params.items()) or default
            results.append((endpoint, label, q[49], q[98]))
    return results


BASELINE_SQL = """
SELECT BillingCurrency, sum(BilledCost), count() FROM costs
WHERE customer_id = {customer:String} AND ChargePeriodStart >= today() - {days:UInt16}
GROUP BY BillingCurrency
"""


def baseline(port: int, requests: int) -> dict[int, float]:
    """p50 ms of the cheapest answer to `total`: one GROUP BY straight on the table through
    clickhouse-connect (no API, no current-load view), per period length."""
    client = create_client(WarehouseSettings(warehouse_port=port))
    p50 = {}
    for days in (30, 365):
        params = {"customer": CUSTOMER, "days": days}
        for _ in range(3):
            client.query(BASELINE_SQL, parameters=params)
        timings = []
        for _ in range(requests):
            began = time.perf_counter()
            client.query(BASELINE_SQL, parameters=params)
            timings.append((time.perf_counter() - began) * 1000)
        p50[days] = statistics.median(timings)
    client.close()
    return p50


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=60)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="api-latency-") as tmp:
        warehouse = start_warehouse(Path(tmp) / "warehouse")
        api = None
        try:
            seconds = load(warehouse.port, args.lines)
            print(f"loaded {args.lines:,} lines through replace_window in {seconds:.1f} s")
            token = add_key(Path(tmp) / "keys.yaml", "benchmark", [CUSTOMER])
            api, base = start_api(warehouse.port, Path(tmp) / "keys.yaml")
            rows = measure(base, token, args.requests)
            base_p50 = baseline(warehouse.port, args.requests)
        finally:
            if api is not None and api.poll() is None:
                os.kill(api.pid, signal.SIGTERM)
                api.wait(10)
            warehouse.stop()
    print(f"\n{'endpoint':<12} {'parameters':<24} {'p50 ms':>8} {'p99 ms':>8} {'p50/base':>9}")
    for endpoint, label, p50, p99 in rows:
        ratio = p50 / base_p50[365 if "days=365" in label else 30]
        print(f"{endpoint:<12} {label:<24} {p50:>8.1f} {p99:>8.1f} {ratio:>8.1f}x")
    for days, p50 in base_p50.items():
        print(f"{'baseline':<12} {f'raw SQL total days={days}':<24} {p50:>8.1f}")
    print(f"\n{args.requests} sequential requests each, one customer, {args.lines:,} lines")


if __name__ == "__main__":
    main()
