"""Peak memory of the API process while it streams a FOCUS export of >= 1 M lines.

    python -m benchmarks.export_memory [--lines N] [--bound-mb M]

Starts a cost-warehouse endpoint on a temporary directory, writes N lines of one customer through
the write path (as benchmarks.api_latency does), then per format starts a fresh API with uvicorn,
downloads `GET .../all/export?days=365&format=...` to a file and reads the uvicorn process's peak
resident set (VmHWM in /proc/<pid>/status) before and after. Prints lines, bytes, seconds and the
peaks, and fails when the export raised the API's peak by more than M MiB (default 64).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pyarrow.parquet as pq

from benchmarks.api_latency import CUSTOMER, load, month_windows, start_api
from cost_api.auth import add_key
from cost_pipelines.providers import PROVIDERS
from tests.support.processes import start_warehouse

BOUND_MB = 64


def status_kib(pid: int, field: str) -> int:
    """A `VmHWM`/`VmRSS` line of /proc/<pid>/status, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for pid {pid}")


def download(base: str, token: str, fmt: str, into: Path) -> tuple[int, float]:
    """Stream one export to a file; returns its bytes and the seconds it took."""
    path = f"/api/v2/costs/{CUSTOMER}/all/export"
    began = time.perf_counter()
    size = 0
    with (
        httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as http,
        http.stream("GET", path, params={"days": 365, "format": fmt}, timeout=1800) as response,
        into.open("wb") as out,
    ):
        response.raise_for_status()
        for chunk in response.iter_bytes():
            size += len(chunk)
            out.write(chunk)
    return size, time.perf_counter() - began


def lines_in(path: Path, fmt: str) -> int:
    if fmt == "parquet":
        return int(pq.ParquetFile(path).metadata.num_rows)
    with path.open("rb") as handle:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b"")) - 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--bound-mb", type=int, default=BOUND_MB)
    args = parser.parse_args()
    failed = False
    with tempfile.TemporaryDirectory(prefix="export-memory-") as tmp:
        warehouse = start_warehouse(Path(tmp) / "warehouse")
        try:
            # Whole windows of equal size (one per provider and month), at least --lines in all.
            windows = len(month_windows(datetime.now(UTC).date())) * len(PROVIDERS)
            lines = -(-args.lines // windows) * windows
            seconds = load(warehouse.port, lines)
            print(f"loaded {lines:,} lines through replace_window in {seconds:.1f} s\n")
            token = add_key(Path(tmp) / "keys.yaml", "benchmark", [CUSTOMER])
            print(
                f"{'format':<8} {'lines':>10} {'MiB':>8} {'s':>7} {'API RSS before':>15} "
                f"{'API peak':>9} {'raised by':>10} {'warehouse peak':>15}"
            )
            for fmt in ("csv", "parquet"):
                api, base = start_api(warehouse.port, Path(tmp) / "keys.yaml")
                try:
                    # One small request first: imports and the warehouse client are in place.
                    httpx.get(
                        f"{base}/api/v2/costs/{CUSTOMER}/all/total",
                        timeout=60,
                        headers={"Authorization": f"Bearer {token}"},
                    ).raise_for_status()
                    before = status_kib(api.pid, "VmHWM")
                    out = Path(tmp) / f"export.{fmt}"
                    size, took = download(base, token, fmt, out)
                    peak = status_kib(api.pid, "VmHWM")
                finally:
                    os.kill(api.pid, signal.SIGTERM)
                    api.wait(10)
                raised = (peak - before) / 1024
                failed |= raised > args.bound_mb
                print(
                    f"{fmt:<8} {lines_in(out, fmt):>10,} {size / 2**20:>8.1f} {took:>7.1f} "
                    f"{before / 1024:>12.1f} MiB {peak / 1024:>5.1f} MiB {raised:>6.1f} MiB "
                    f"{status_kib(warehouse.pid, 'VmHWM') / 1024:>11.1f} MiB"
                )
                out.unlink()
        finally:
            warehouse.stop()
    verdict = "within" if not failed else "ABOVE"
    print(f"\nAPI peak raised by the export: {verdict} the bound of {args.bound_mb} MiB")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
