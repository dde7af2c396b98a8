"""Reads under load while the same customer is rewritten and the warehouse freezes mid-way.

    python -m benchmarks.read_load [--clients 64] [--seconds 60] [--freeze 10] [--lines 20000]

Starts a cost-warehouse endpoint and the API (uvicorn) on free ports, writes one customer's
window, then for --seconds runs --clients concurrent clients on the read endpoints while a
writer rewrites that same window through the collections' write path (replace_window),
alternating two versions with different totals and line counts. In the middle the warehouse
process is frozen (SIGSTOP) for --freeze seconds, then resumed (SIGCONT). Prints the answers by
status, p50/p99 latency before, during and after the freeze, and torn reads: `total` answers for
the rewritten window that match neither version (must be 0), and the machine's load average
before and after (the figures mean little on a machine busy with other work)."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from benchmarks.api_latency import lines_for
from benchmarks.api_latency import start_api as serve_api
from cost_api.auth import add_key
from cost_pipelines.warehouse.connection import WarehouseSettings, create_client
from cost_pipelines.warehouse.schema import migrate
from cost_pipelines.warehouse.writer import CostWindow, replace_window
from tests.support.processes import start_warehouse

CUSTOMER = "load-customer"
PROVIDER = "aws"


@dataclass(frozen=True)
class Answer:
    began: float  # seconds since the load started
    endpoint: str
    status: int  # 0: no HTTP answer (connection error, client timeout)
    ms: float
    torn: bool


def version(start: datetime, lines: int, seed: int) -> tuple[pd.DataFrame, Decimal, int]:
    frame = lines_for(
        (start.date(), start.date() + timedelta(days=30)), lines, np.random.default_rng(seed)
    )
    frame["BillingCurrency"] = "USD"  # one currency: one total to compare
    return frame, sum((Decimal(v) for v in frame["BilledCost"]), Decimal(0)), len(frame)


def start_api(
    warehouse_port: int, keys_file: Path, deadline_s: float
) -> tuple[subprocess.Popen[bytes], str]:
    """The API with this run's read deadline and no rate limit in the way of 64 clients."""
    limits = {
        "READ_DEADLINE_S": str(deadline_s),
        "RATE_LIMIT_PER_MINUTE": "10000000",
        "RATE_LIMIT_BURST": "1000000",
        "CLICKHOUSE_QUERY_TIMEOUT_S": "30",
    }
    return serve_api(warehouse_port, keys_file, limits, timeout_s=60)


def percentiles(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return (values[0], values[0]) if values else (float("nan"), float("nan"))
    q = statistics.quantiles(values, n=100, method="inclusive")
    return q[49], q[98]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--freeze", type=float, default=10.0)
    parser.add_argument("--lines", type=int, default=20_000)
    parser.add_argument("--deadline", type=float, default=5.0, help="READ_DEADLINE_S of the API")
    args = parser.parse_args()

    load_before = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="read-load-"))
    warehouse = start_warehouse(tmp / "warehouse")
    api = None
    try:
        client = create_client(WarehouseSettings(warehouse_port=warehouse.port))
        migrate(client)
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        start = today - timedelta(days=29)
        window = CostWindow(
            CUSTOMER, PROVIDER, "load-account", start.date(), (today + timedelta(days=1)).date()
        )
        versions = [version(start, args.lines, 1), version(start, args.lines + 7, 2)]
        frames = [
            v[0][v[0]["ChargePeriodStart"] < pd.Timestamp(window.end, tz="UTC")] for v in versions
        ]
        expected = {
            (str(sum((Decimal(x) for x in f["BilledCost"]), Decimal(0)).normalize()), len(f))
            for f in frames
        }
        replace_window(client, window, frames[0], source="load")
        token = add_key(tmp / "keys.yaml", "load", [CUSTOMER])
        api, base = start_api(warehouse.port, tmp / "keys.yaml", args.deadline)
        period: dict[str, str | int] = {
            "start": window.start.isoformat(),
            "end": window.end.isoformat(),
        }
        reads: list[tuple[str, dict[str, str | int]]] = [
            ("total", period),
            ("trends", {"group_by": "day", **period}),
            ("by-type", period),
            ("by-resource", {"limit": 10, **period}),
            ("latest", {}),
            ("metrics", {"limit": 50, **period}),
        ]
        answers: list[Answer] = []
        lock = threading.Lock()
        began = time.monotonic()
        stop_at = began + args.seconds
        rewrites = Counter[str]()

        def reader(index: int) -> None:
            headers = {"Authorization": f"Bearer {token}"}
            with httpx.Client(base_url=base, headers=headers, timeout=60) as http:
                i = index
                while time.monotonic() < stop_at:
                    endpoint, params = reads[i % len(reads)]
                    i += 1
                    t0 = time.monotonic()
                    torn = False
                    try:
                        answer = http.get(
                            f"/api/v2/costs/{CUSTOMER}/{PROVIDER}/{endpoint}", params=params
                        )
                        status = answer.status_code
                        if endpoint == "total" and status == 200:
                            body = answer.json()
                            [line] = body["totals"]
                            seen = (str(Decimal(line["amount"]).normalize()), body["lines"])
                            torn = seen not in expected
                    except httpx.HTTPError:
                        status = 0
                    done = time.monotonic()
                    with lock:
                        answers.append(
                            Answer(t0 - began, endpoint, status, (done - t0) * 1000, torn)
                        )

        def writer() -> None:
            writes = create_client(WarehouseSettings(warehouse_port=warehouse.port))
            n = 1
            while time.monotonic() < stop_at:
                try:
                    replace_window(writes, window, frames[n % 2], source="load")
                    rewrites["done"] += 1
                    n += 1
                except Exception as exc:  # frozen warehouse: the write times out, try again
                    rewrites[type(exc).__name__] += 1
            writes.close()

        threads = [threading.Thread(target=reader, args=(i,)) for i in range(args.clients)]
        threads.append(threading.Thread(target=writer))
        for thread in threads:
            thread.start()
        freeze_at = args.seconds / 2 - args.freeze / 2
        time.sleep(max(0.0, began + freeze_at - time.monotonic()))
        os.kill(warehouse.pid, signal.SIGSTOP)
        time.sleep(args.freeze)
        os.kill(warehouse.pid, signal.SIGCONT)
        for thread in threads:
            thread.join()

        thaw_at = freeze_at + args.freeze
        phases = {
            "before": [a for a in answers if a.began < freeze_at],
            "during": [a for a in answers if freeze_at <= a.began < thaw_at],
            "after": [a for a in answers if a.began >= thaw_at],
        }
        print(
            f"{args.clients} clients, {args.seconds:.0f} s, warehouse frozen "
            f"[{freeze_at:.0f} s, {thaw_at:.0f} s), READ_DEADLINE_S={args.deadline:g}, "
            f"{len(frames[0]):,}/{len(frames[1]):,} lines per version"
        )
        print(f"rewrites of the window: {dict(rewrites)}")
        print(f"{'phase':<8}{'answers':>9}{'p50 ms':>10}{'p99 ms':>10}   by status")
        for name, items in phases.items():
            p50, p99 = percentiles([a.ms for a in items])
            statuses = dict(sorted(Counter(a.status for a in items).items()))
            print(f"{name:<8}{len(items):>9}{p50:>10.0f}{p99:>10.0f}   {statuses}")
        print(f"all: {dict(sorted(Counter(a.status for a in answers).items()))}")
        totals_read = sum(1 for a in answers if a.endpoint == "total" and a.status == 200)
        print(f"torn reads: {sum(a.torn for a in answers)} of {totals_read} total answers checked")
        load_after = os.getloadavg()
        print(
            f"machine: {os.cpu_count()} CPUs, load average (1/5/15 min) before "
            + "/".join(f"{v:.2f}" for v in load_before)
            + ", after "
            + "/".join(f"{v:.2f}" for v in load_after)
        )
        client.close()
    finally:
        if api is not None:
            api.terminate()
            api.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):
            os.kill(warehouse.pid, signal.SIGCONT)
        warehouse.stop()


if __name__ == "__main__":
    main()
