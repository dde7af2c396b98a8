"""PostgreSQL 15 as the benchmark's baseline: Debian's package, a throwaway cluster.

`Postgres.start(dir)` installs the package if it is missing (apt-get, as root) and starts a
throwaway cluster with `cost_local.postgres` (initdb as the `postgres` user when we are root, a
free loopback port, stopped by the postmaster's PID). `load_from` copies the
current cost lines of the given customers out of the warehouse (COPY), adds the covering index a
competent user would add for these reads and runs VACUUM ANALYZE, so the aggregates are
index-only scans. The queries give the same answers as the API's reads of the same name.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from benchmarks.api_latency import free_port
from cost_local.postgres import (
    PostgresServer,
    PostgresUnavailable,
    server_bin_dir,
    start_postgres,
    stop_postgres,
)

PG_VERSION = "15"
SERVER_OPTIONS = "-c shared_buffers=256MB -c work_mem=64MB -c max_parallel_workers_per_gather=2"


def install_if_missing() -> None:
    """Debian's package when no server is installed and we may (root), as `make test` does."""
    try:
        server_bin_dir()
    except PostgresUnavailable:
        if os.geteuid() != 0:
            raise
        subprocess.run(["apt-get", "update"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run(
            ["apt-get", "install", "-y", "postgresql"], check=True, stdout=subprocess.DEVNULL
        )


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


@dataclass
class Postgres:
    server: PostgresServer

    @classmethod
    def start(cls, directory: Path) -> Postgres:
        """Debian's PostgreSQL on a free loopback port (cost_local.postgres: initdb as the
        `postgres` user when root), sized for the aggregates."""
        install_if_missing()
        # The run's temporary directory is 0700: let the `postgres` user pass through it.
        directory.parent.chmod(0o711)
        return cls(start_postgres(directory, free_port(), "bench", SERVER_OPTIONS))

    def connect(self) -> psycopg.Connection[Any]:
        server = self.server
        return psycopg.connect(
            host="127.0.0.1",
            port=server.port,
            user=server.user,
            password=server.password,
            dbname=server.database,
            autocommit=True,
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
        stop_postgres(self.server)
