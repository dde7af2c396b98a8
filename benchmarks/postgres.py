"""PostgreSQL 15 as the benchmark's baseline: Debian's package, a throwaway cluster.

`Postgres.start(dir)` installs the package if it is missing (apt-get, as root), runs initdb on a
temporary directory (as the `postgres` user when we are root: initdb refuses root), starts the
server on a free loopback port and stops it by the PID in postmaster.pid. `load_from` copies the
current cost lines of the given customers out of the warehouse (COPY), adds the covering index a
competent user would add for these reads and runs VACUUM ANALYZE, so the aggregates are
index-only scans. The queries give the same answers as the API's reads of the same name.
"""

from __future__ import annotations

import glob
import os
import pwd
import signal
import statistics
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from benchmarks.api_latency import free_port

PG_VERSION = "15"

SCHEMA = """
CREATE TABLE costs (
    customer_id      text NOT NULL,
    provider         text NOT NULL,
    charge_date      date NOT NULL,
    currency         text NOT NULL,
    service_category text NOT NULL,
    service_name     text NOT NULL,
    resource_id      text NOT NULL,
    resource_name    text NOT NULL,
    billed           numeric(38, 12) NOT NULL
)
"""
# Every read filters on customer, period and provider and needs only these columns.
INDEX = """
CREATE INDEX costs_reads ON costs (customer_id, charge_date, provider)
INCLUDE (currency, service_category, service_name, resource_id, resource_name, billed)
"""
EXPORT_SQL = """
SELECT customer_id, provider, toDate(ChargePeriodStart), BillingCurrency, ServiceCategory,
       ServiceName, ResourceId, ResourceName, BilledCost
FROM costs_current(customer_id = {customer_id:String})
"""
_SCOPE = (
    "customer_id = %(c)s AND charge_date >= %(start)s AND charge_date < %(end)s "
    "AND provider = ANY(%(providers)s)"
)
# Every value is bound (%(name)s); the texts are constants.
QUERIES = {
    "total": """
SELECT currency, sum(billed), count(*) FROM costs WHERE {scope}
GROUP BY currency ORDER BY currency""",
    "trends_day": """
SELECT charge_date, currency, sum(billed) FROM costs WHERE {scope}
GROUP BY charge_date, currency ORDER BY charge_date, currency""",
    "trends_month": """
SELECT date_trunc('month', charge_date), currency, sum(billed) FROM costs WHERE {scope}
GROUP BY 1, currency ORDER BY 1, currency""",
    "by_resource": """
SELECT * FROM (
  SELECT provider, resource_id, currency, max(resource_name), max(service_name),
         sum(billed) AS amount,
         row_number() OVER (PARTITION BY currency ORDER BY sum(billed) DESC) AS rank,
         sum(sum(billed)) OVER (PARTITION BY currency) AS currency_total
  FROM costs WHERE {scope}
  GROUP BY provider, resource_id, CASE WHEN resource_id = '' THEN service_name END, currency
) ranked WHERE rank <= 10 ORDER BY currency, amount DESC""",
    "by_type": """
SELECT currency, service_category, service_name, sum(billed) FROM costs WHERE {scope}
GROUP BY currency, service_category, service_name""",
}
QUERIES = {name: text.replace("{scope}", _SCOPE) for name, text in QUERIES.items()}
ALL_PROVIDERS = ["aws", "azure", "gcp", "vultr"]


def _bin_dir() -> Path:
    found = sorted(glob.glob(f"/usr/lib/postgresql/{PG_VERSION}/bin/initdb"))
    if not found and os.geteuid() == 0:
        subprocess.run(["apt-get", "update"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run(
            ["apt-get", "install", "-y", "postgresql"], check=True, stdout=subprocess.DEVNULL
        )
        found = sorted(glob.glob(f"/usr/lib/postgresql/{PG_VERSION}/bin/initdb"))
    if not found:
        raise RuntimeError(
            f"PostgreSQL {PG_VERSION} is not installed: apt-get install -y postgresql"
        )
    return Path(found[0]).parent


@dataclass
class Postgres:
    data_dir: Path
    port: int
    bin_dir: Path

    @classmethod
    def start(cls, directory: Path) -> Postgres:
        bin_dir = _bin_dir()
        directory.mkdir(parents=True, exist_ok=True)
        data, sockets = directory / "data", directory / "sockets"
        sockets.mkdir(exist_ok=True)
        as_user: list[str] = []
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            user = pwd.getpwnam("postgres")
            for path in (directory, sockets):
                os.chown(path, user.pw_uid, user.pw_gid)
            os.chmod(directory.parent, 0o755)
            as_user = ["runuser", "-u", "postgres", "--"]
        subprocess.run(
            [
                *as_user,
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-A",
                "trust",
                "-U",
                "bench",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        port = free_port()
        options = (
            f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c shared_buffers=256MB -c work_mem=64MB -c max_parallel_workers_per_gather=2"
        )
        subprocess.run(
            [
                *as_user,
                str(bin_dir / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                options,
                "-w",
                "-l",
                str(directory / "log"),
                "start",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        return cls(data, port, bin_dir)

    def connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(
            host="127.0.0.1", port=self.port, user="bench", dbname="postgres", autocommit=True
        )

    def load_from(self, client: Any, customers: list[str]) -> int:
        """Copy the customers' current lines from the warehouse; returns the rows loaded."""
        rows = 0
        with self.connect() as conn:
            conn.execute(SCHEMA)
            with conn.cursor() as cur:
                for customer in customers:
                    with cur.copy("COPY costs FROM STDIN (FORMAT csv)") as copy:
                        stream = client.raw_stream(
                            EXPORT_SQL, parameters={"customer_id": customer}, fmt="CSV"
                        )
                        for chunk in stream:
                            copy.write(chunk)
                rows = int(conn.execute("SELECT count(*) FROM costs").fetchone()[0])  # type: ignore[index]
            conn.execute(INDEX)
            conn.execute("VACUUM ANALYZE costs")
        return rows

    def p50(self, query: str, customer: str, provider: str, days: int, requests: int) -> float:
        today = datetime.now(UTC).date()
        params = {
            "c": customer,
            "start": today + timedelta(days=1 - days),
            "end": today + timedelta(days=1),
            "providers": ALL_PROVIDERS if provider == "all" else [provider],
        }
        sql = QUERIES[query]
        with self.connect() as conn:
            for _ in range(2):
                conn.execute(sql, params).fetchall()
            timings = []
            for _ in range(requests):
                began = time.perf_counter()
                conn.execute(sql, params).fetchall()
                timings.append((time.perf_counter() - began) * 1000)
        return statistics.median(timings)

    def explain(self, query: str, customer: str, days: int) -> str:
        today = datetime.now(UTC).date()
        params = {
            "c": customer,
            "start": today - timedelta(days=days - 1),
            "end": today + timedelta(days=1),
            "providers": ALL_PROVIDERS,
        }
        with self.connect() as conn:
            plan = conn.execute("EXPLAIN " + QUERIES[query], params).fetchall()
        return "\n".join(str(row[0]) for row in plan)

    def stop(self) -> None:
        """Fast shutdown by the postmaster's PID (first line of postmaster.pid)."""
        pid_file = self.data_dir / "postmaster.pid"
        if not pid_file.exists():
            return
        pid = int(pid_file.read_text().split()[0])
        try:
            os.kill(pid, signal.SIGINT)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)
