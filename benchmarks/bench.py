"""`make bench`: the write path and every cost read, each figure beside its baseline.

    python -m benchmarks.bench [--quick] [--json FILE]

One run, one data set (default: a customer with 2,000,000 lines over 365 days, 4 providers,
~20k resources, 40 services, 2 currencies, plus 9 customers x 50,000 lines, each with one provider
and billing account; `--quick`: 100,000 plus 9 x 5,000, under 5 minutes):

1. write path: every window through `replace_window`, against the engine's own bulk load of
   exactly the stored rows (INSERT ... SELECT FROM file(Parquet)) into a copy of the table;
2. reads through the API (uvicorn): per endpoint, provider `all` and `aws`, 30 and 365 days,
   p50/p99 at concurrency 1, requests/s and errors at concurrency 16;
3. the same logical queries on PostgreSQL 15 (Debian's package, started here on a free port in
   a temporary directory and stopped by PID) over the same current rows, with a covering index
   and index-only scans, against the API's p50;
4. the API's own overhead: API p50 minus the p50 of the same SQL sent straight to the engine.

Prints one table (with the machine's load average) and writes every figure to JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from benchmarks.api_latency import start_api
from benchmarks.dataset import Customer
from benchmarks.postgres import Postgres
from benchmarks.write_path import measure as measure_write
from benchmarks.write_path import write_customers
from cost_api.auth import add_key
from cost_api.readers.cost_reader import TOTAL_SQL as API_TOTAL_SQL
from cost_pipelines.warehouse.connection import WarehouseSettings, create_client
from tests.support.processes import start_warehouse

BIG = "bench-big"


@dataclass(frozen=True)
class Size:
    customers: list[Customer]
    requests: int  # sequential requests per case (concurrency 1)
    per_worker: int  # requests per worker at concurrency 16


def _small(number: int, lines: int) -> Customer:
    """One of the other customers: one provider and account (13 windows), 2,000 resources."""
    provider = ("aws", "azure", "gcp", "vultr")[number % 4]
    return Customer(
        f"bench-small-{number}", lines, resources=2_000, providers=(provider,), accounts=1
    )


SIZES = {
    "quick": Size(
        [Customer(BIG, 100_000, resources=5_000)] + [_small(i, 5_000) for i in range(1, 10)],
        requests=10,
        per_worker=1,
    ),
    "full": Size(
        [Customer(BIG, 2_000_000, resources=20_000)] + [_small(i, 50_000) for i in range(1, 10)],
        requests=40,
        per_worker=4,
    ),
}
CONCURRENCY = 16
PROVIDERS = ("all", "aws")
# (endpoint, parameters, has a period, the PostgreSQL query of the same answer or None)
ENDPOINTS: list[tuple[str, dict[str, Any], bool, str | None]] = [
    ("total", {}, True, "total"),
    ("trends", {"group_by": "day"}, True, "trends_day"),
    ("trends", {"group_by": "month"}, True, "trends_month"),
    ("by-resource", {"limit": 10}, True, "by_resource"),
    ("by-type", {}, True, "by_type"),
    ("metrics", {"limit": 100}, True, None),
    ("latest", {}, False, None),
]


@dataclass
class Case:
    endpoint: str
    params: dict[str, Any]
    provider: str
    days: int | None
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    c16_rps: float = 0.0
    c16_errors: int = 0
    c16_p99_ms: float = 0.0
    pg_p50_ms: float | None = None
    pg_over_api: float | None = None

    @property
    def label(self) -> str:
        extra = " ".join(f"{k}={v}" for k, v in self.params.items() if k != "days")
        period = f"{self.days} d" if self.days else "newest day"
        return f"{self.endpoint} {extra}".strip() + f" [{self.provider}, {period}]"


@dataclass
class Report:
    size: str
    cpus: int | None
    load: dict[str, float] = field(default_factory=dict)
    write: dict[str, float] = field(default_factory=dict)
    cases: list[Case] = field(default_factory=list)
    overhead: dict[str, float] = field(default_factory=dict)
    deep_page: dict[str, float] = field(default_factory=dict)


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _quantiles(timings: list[float]) -> tuple[float, float]:
    if len(timings) < 2:
        return timings[0], timings[0]
    q = statistics.quantiles(timings, n=100, method="inclusive")
    return q[49], q[98]


def _timed(call: Callable[[], object], count: int, warm: int = 2) -> list[float]:
    for _ in range(warm):
        call()
    timings = []
    for _ in range(count):
        began = time.perf_counter()
        call()
        timings.append((time.perf_counter() - began) * 1000)
    return timings


def sequential(base: str, token: str, case: Case, requests: int) -> None:
    path = f"/api/v2/costs/{BIG}/{case.provider}/{case.endpoint}"
    params = {**case.params, **({"days": case.days} if case.days else {})}
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as http:
        case.p50_ms, case.p99_ms = _quantiles(
            _timed(lambda: http.get(path, params=params, timeout=120).raise_for_status(), requests)
        )


def concurrent(base: str, token: str, case: Case, per_worker: int) -> None:
    """CONCURRENCY clients, each sending `per_worker` requests back to back."""
    path = f"/api/v2/costs/{BIG}/{case.provider}/{case.endpoint}"
    params = {**case.params, **({"days": case.days} if case.days else {})}
    errors: list[str] = []
    timings: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as http:
            for _ in range(per_worker):
                began = time.perf_counter()
                try:
                    status = http.get(path, params=params, timeout=120).status_code
                except httpx.HTTPError as exc:
                    status, reason = 0, type(exc).__name__
                else:
                    reason = str(status)
                with lock:
                    timings.append((time.perf_counter() - began) * 1000)
                    if status != 200:
                        errors.append(reason)

    threads = [threading.Thread(target=worker) for _ in range(CONCURRENCY)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    case.c16_rps = len(timings) / wall
    case.c16_errors = len(errors)
    case.c16_p99_ms = _quantiles(timings)[1]


# The API's total, its own SQL text sent straight to the engine (same view, same binding).
TOTAL_SQL = API_TOTAL_SQL[False]


def overhead(base: str, token: str, port: int, requests: int) -> dict[str, float]:
    """API p50 and SQL p50 of total over 30 days, measured alternately (one API request, then
    the same SQL straight to the engine) so both see the same machine load."""
    client = create_client(WarehouseSettings(warehouse_port=port))
    today = datetime.now(UTC).date()
    params = {
        "customer_id": BIG,
        "providers": ["aws", "azure", "gcp", "vultr"],
        "metric": "BilledCost",
        "start": datetime.combine(today - timedelta(days=29), datetime.min.time()),
        "end": datetime.combine(today + timedelta(days=1), datetime.min.time()),
    }
    path = f"/api/v2/costs/{BIG}/all/total"
    api_ms: list[float] = []
    sql_ms: list[float] = []
    try:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as http:
            for number in range(requests + 2):
                began = time.perf_counter()
                http.get(path, params={"days": 30}, timeout=120).raise_for_status()
                middle = time.perf_counter()
                client.query(TOTAL_SQL, parameters=params)
                ended = time.perf_counter()
                if number >= 2:  # two warm-up rounds
                    api_ms.append((middle - began) * 1000)
                    sql_ms.append((ended - middle) * 1000)
    finally:
        client.close()
    api, sql = statistics.median(api_ms), statistics.median(sql_ms)
    return {
        "api_p50_ms": round(api, 2),
        "sql_p50_ms": round(sql, 2),
        "overhead_ms": round(api - sql, 2),
    }


DEEP_PAGE = 100  # the page whose cost is set against the first page's (lines 9,901-10,000)


def deep_page(base: str, token: str, requests: int) -> dict[str, float]:
    """metrics over 365 days: p50 of page DEEP_PAGE (reached by following the cursors) beside
    p50 of page 1, each request repeated with the same cursor."""
    path = f"/api/v2/costs/{BIG}/all/metrics"
    params: dict[str, Any] = {"days": 365, "limit": 100}
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as http:
        first = _timed(
            lambda: http.get(path, params=params, timeout=120).raise_for_status(), requests
        )
        cursor = None
        for _ in range(DEEP_PAGE - 1):
            answer = http.get(path, params={**params, "cursor": cursor} if cursor else params)
            cursor = answer.raise_for_status().json()["next_cursor"]
        deep = {**params, "cursor": cursor}
        later = _timed(
            lambda: http.get(path, params=deep, timeout=120).raise_for_status(), requests
        )
    return {
        "page": DEEP_PAGE,
        "first_p50_ms": round(_quantiles(first)[0], 2),
        "deep_p50_ms": round(_quantiles(later)[0], 2),
    }


def print_report(report: Report) -> None:
    w = report.write
    print(
        f"\nmake bench ({report.size}): {report.cpus} CPUs; load average "
        + ", ".join(f"{k} {v}" for k, v in report.load.items())
    )
    print(f"{'figure':<46} {'value':>12} {'baseline':>12} {'ratio':>7}")
    print(
        f"{'write path, rows/s (baseline: engine bulk load)':<46} "
        f"{w['write_rows_per_s']:>12,.0f} {w['bulk_rows_per_s']:>12,.0f} {w['ratio']:>7.3f}"
    )
    print(
        f"{'  big customer: lines / writer RSS growth MiB':<46} {w['lines']:>12,.0f} "
        f"{w['rss_growth_mib']:>12.0f}"
    )
    print(
        f"{'  9 other customers: lines / rows/s':<46} {w['small_lines']:>12,.0f} "
        f"{w['small_write_rows_per_s']:>12,.0f}"
    )
    o = report.overhead
    print(
        f"{'API overhead, total 30 d, ms (API p50 - SQL p50)':<46} {o['overhead_ms']:>12.1f} "
        f"{o['sql_p50_ms']:>12.1f}"
    )
    d = report.deep_page
    label = f"metrics 365 d, page {d['page']:.0f} p50 ms (baseline: page 1)"
    print(
        f"{label:<46} "
        f"{d['deep_p50_ms']:>12.1f} {d['first_p50_ms']:>12.1f} "
        f"{d['deep_p50_ms'] / d['first_p50_ms']:>7.2f}"
    )
    print(
        f"\n{'read [provider, period]':<46} {'p50 ms':>8} {'p99 ms':>8} {'c16 r/s':>8} "
        f"{'errors':>6} {'c16 p99':>8} {'PG p50':>8} {'PG/API':>7}"
    )
    for c in report.cases:
        pg = f"{c.pg_p50_ms:8.1f}" if c.pg_p50_ms is not None else f"{'-':>8}"
        ratio = f"{c.pg_over_api:7.1f}x" if c.pg_over_api is not None else f"{'-':>8}"
        print(
            f"{c.label:<46} {c.p50_ms:8.1f} {c.p99_ms:8.1f} {c.c16_rps:8.1f} "
            f"{c.c16_errors:>6} {c.c16_p99_ms:8.0f} {pg} {ratio}"
        )
    print("PG/API: PostgreSQL p50 over API p50 of the same answer (above 1: the API is faster)")


def run(size_name: str, json_path: Path) -> Report:
    size = SIZES[size_name]
    report = Report(size_name, os.cpu_count())
    report.load["start"] = _load()
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp_name:
        tmp = Path(tmp_name)
        warehouse = start_warehouse(tmp / "warehouse")
        api = None
        pg = None
        try:
            # The ratio over the big customer's windows alone (a fresh table holds just them);
            # the small customers are written after it, timed on their own.
            figures = measure_write(warehouse.port, "default", size.customers[:1], tmp)
            client = create_client(WarehouseSettings(warehouse_port=warehouse.port))
            small_lines, small_s, _ = write_customers(
                client, size.customers[1:], datetime.now(UTC).date()
            )
            report.write = {
                "lines": figures.lines,
                "write_s": round(figures.write_s, 3),
                "bulk_s": round(figures.bulk_s, 3),
                "write_rows_per_s": round(figures.write_rate),
                "bulk_rows_per_s": round(figures.bulk_rate),
                "ratio": round(figures.ratio, 4),
                "rss_growth_mib": round(figures.rss_growth_kib / 1024, 1),
                "small_lines": small_lines,
                "small_write_rows_per_s": round(small_lines / small_s),
            }
            report.load["after write"] = _load()
            client.command("OPTIMIZE TABLE costs FINAL")
            client.command("OPTIMIZE TABLE cost_loads FINAL")
            token = add_key(tmp / "keys.yaml", "bench", [c.customer_id for c in size.customers])
            # The per-key rate limit is a production guard, not what is measured here.
            unlimited = {"RATE_LIMIT_PER_MINUTE": "10000000", "RATE_LIMIT_BURST": "100000"}
            api, base = start_api(warehouse.port, tmp / "keys.yaml", unlimited)
            for provider in PROVIDERS:
                for endpoint, params, has_period, _ in ENDPOINTS:
                    for days in (30, 365) if has_period else (None,):
                        case = Case(endpoint, params, provider, days)
                        sequential(base, token, case, size.requests)
                        concurrent(base, token, case, size.per_worker)
                        report.cases.append(case)
                        print(f"  {case.label}: p50 {case.p50_ms:.1f} ms", flush=True)
            report.load["after reads"] = _load()
            report.overhead = overhead(base, token, warehouse.port, 2 * size.requests)
            report.deep_page = deep_page(base, token, size.requests)
            pg = Postgres.start(tmp / "postgres")
            pg.load_from(client, [c.customer_id for c in size.customers])
            client.close()
            for case in report.cases:
                query = next(
                    (q for e, p, _, q in ENDPOINTS if e == case.endpoint and p == case.params),
                    None,
                )
                if query is None or case.days is None:
                    continue
                case.pg_p50_ms = pg.p50(query, BIG, case.provider, case.days, size.requests)
                case.pg_over_api = case.pg_p50_ms / case.p50_ms
            report.load["end"] = _load()
        finally:
            if pg is not None:
                pg.stop()
            if api is not None and api.poll() is None:
                os.kill(api.pid, signal.SIGTERM)
                api.wait(10)
            warehouse.stop()
    json_path.write_text(
        json.dumps(
            {**asdict(report), "cases": [{**asdict(c), "label": c.label} for c in report.cases]},
            indent=2,
        )
    )
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the small size (< 5 minutes)")
    parser.add_argument("--json", type=Path, default=Path("bench-results.json"))
    args = parser.parse_args(argv)
    began = time.perf_counter()
    report = run("quick" if args.quick else "full", args.json)
    print_report(report)
    print(f"figures in {args.json}; took {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
