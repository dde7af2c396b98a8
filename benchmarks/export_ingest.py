"""Peak memory of collecting a large AWS Data Exports FOCUS export, by line count.

    python -m benchmarks.export_ingest [--lines 500000 2000000]

For each size: writes a FOCUS 1.2 Parquet export of that many lines for one billing period
(row groups of 100k lines, amounts decimal(38, 12), tags as a map), puts it with its
Manifest.json into S3 on a moto server (a separate process), and materializes `aws_costs` for
the month in a fresh collector process (Dagster, in-process executor), which streams the file
into a cost-warehouse endpoint. Prints the lines stored, seconds, lines/s and the collector's
peak RSS; a flat RSS across sizes is what streaming means.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import boto3
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from benchmarks.api_latency import free_port
from benchmarks.dataset import Customer, Window, window_table
from tests.support.processes import start_warehouse

PERIOD = date(2026, 10, 1)
END = date(2026, 11, 1)
ACCOUNT = "123456789012"
BUCKET, PREFIX, NAME = "bench-billing", "exports", "bench-focus"
ROW_GROUP = 100_000


def write_export(path: Path, lines: int) -> None:
    """A FOCUS export file of `lines` lines dated in PERIOD's month, written group by group."""
    customer = Customer("bench", lines)
    writer: pq.ParquetWriter | None = None
    for number, begin in enumerate(range(0, lines, ROW_GROUP)):
        size = min(ROW_GROUP, lines - begin)
        table = window_table(Window("bench", "aws", ACCOUNT, PERIOD, END, size), customer, number)
        n = table.num_rows
        money = ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "PricingQuantity")
        for column in money:
            index = table.schema.get_field_index(column)
            table = table.set_column(
                index, column, pc.cast(table.column(column), pa.decimal128(38, 12))
            )
        for column in ("ChargePeriodStart", "ChargePeriodEnd"):
            index = table.schema.get_field_index(column)
            text = pc.strftime(table.column(column), format="%Y-%m-%dT%H:%M:%SZ")
            table = table.set_column(index, column, text)
        # One line per (resource, day, SKU) as in a real export: the SKU carries the line number.
        numbers = pc.cast(pa.array(range(begin, begin + n)), pa.string())
        index = table.schema.get_field_index("SkuId")
        table = table.set_column(index, "SkuId", pc.binary_join_element_wise("SKU-", numbers, ""))
        tags = pa.array([[("team", "core")]] * n, pa.map_(pa.string(), pa.string()))
        table = (
            table.append_column("BillingAccountId", pa.repeat(ACCOUNT, n))
            .append_column("BillingPeriodStart", pa.repeat("2026-10-01T00:00:00Z", n))
            .append_column("BillingPeriodEnd", pa.repeat("2026-11-01T00:00:00Z", n))
            .append_column("ChargeClass", pa.nulls(n, pa.string()))
            .append_column("Tags", tags)
        )
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema, compression="snappy")
        writer.write_table(table, row_group_size=ROW_GROUP)
    assert writer is not None
    writer.close()


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            s3(url).list_buckets()
            return process, url
        except Exception:
            time.sleep(0.3)
    process.kill()
    raise RuntimeError("moto did not start within 60 s")


def s3(url: str) -> Any:
    return boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url=url,
        aws_access_key_id="AKIABENCHBENCH000001",
        aws_secret_access_key="bench-secret",
    )


def deliver(url: str, path: Path) -> None:
    client = s3(url)
    client.create_bucket(Bucket=BUCKET)
    key = f"{PREFIX}/{NAME}/data/BILLING_PERIOD=2026-10/run-1/{NAME}-00001.snappy.parquet"
    client.upload_file(str(path), BUCKET, key)
    manifest = {"dataFiles": [f"s3://{BUCKET}/{key}"], "billingPeriod": {"start": "2026-10-01"}}
    client.put_object(
        Bucket=BUCKET,
        Key=f"{PREFIX}/{NAME}/metadata/BILLING_PERIOD=2026-10/{NAME}-Manifest.json",
        Body=json.dumps(manifest).encode(),
    )


COLLECTOR = """
import resource, sys, time
from dagster import StaticPartitionsDefinition, materialize
from cost_pipelines.assets.aws import AWS
from cost_pipelines.assets.collection import build_cost_asset
from cost_pipelines.resources.aws import AwsResource
from cost_pipelines.resources.clickhouse import ClickHouseResource
from cost_pipelines.resources.customers import CustomersResource
asset = build_cost_asset(AWS, StaticPartitionsDefinition(["bench"]))
began = time.perf_counter()
result = materialize(
    [asset], partition_key="bench",
    resources={"warehouse": ClickHouseResource(), "customers": CustomersResource(path=sys.argv[1]),
               "aws": AwsResource()},
    run_config={"ops": {"aws_costs": {"config": {"start": "2026-10-01", "end": "2026-11-01"}}}},
)
seconds = time.perf_counter() - began
rows = [m for m in result.asset_materializations_for_node("aws_costs")][0].metadata["rows_written"]
print(f"RESULT {rows.value} {seconds:.2f} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}")
"""


def collect(customers_file: Path, warehouse_port: int, moto_url: str) -> tuple[int, float, int]:
    """(lines stored, seconds, peak RSS KiB) of one collector process."""
    env = {
        **os.environ,
        "WAREHOUSE_PORT": str(warehouse_port),
        "BENCH_S3": moto_url,
        "BENCH_KEY_ID": "AKIABENCHBENCH000001",
        "BENCH_SECRET": "bench-secret",
        "DAGSTER_HOME": str(customers_file.parent),
    }
    env.pop("CLICKHOUSE_URL", None)
    out = subprocess.run(
        [sys.executable, "-c", COLLECTOR, str(customers_file)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"collector failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    _, rows, seconds, rss = line.split()
    return int(rows), float(seconds), int(rss)


def customers_yaml(path: Path) -> Path:
    import yaml

    entry = {
        "name": "Bench",
        "providers": {
            "aws": {
                "billing_account_id": ACCOUNT,
                "credentials": {
                    "access_key_id_env": "BENCH_KEY_ID",
                    "secret_access_key_env": "BENCH_SECRET",
                },
                "endpoint_url_env": "BENCH_S3",
                "export": {"bucket": BUCKET, "prefix": PREFIX, "name": NAME},
            }
        },
    }
    path.write_text(yaml.safe_dump({"customers": {"bench": entry}}), encoding="utf-8")
    return path


def measure(lines: int, tmp: Path) -> tuple[int, float, int, int]:
    """(lines stored, seconds, peak RSS KiB, export file bytes) for one size."""
    export = tmp / f"export-{lines}.parquet"
    write_export(export, lines)
    size = export.stat().st_size
    warehouse = start_warehouse(tmp / f"warehouse-{lines}")
    moto, url = start_moto()
    try:
        deliver(url, export)
        export.unlink()
        stored, seconds, rss = collect(customers_yaml(tmp / "customers.yaml"), warehouse.port, url)
    finally:
        os.killpg(moto.pid, signal.SIGTERM)
        moto.wait(10)
        warehouse.stop()
    return stored, seconds, rss, size


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, nargs="+", default=[500_000, 2_000_000])
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory(prefix="export-bench-") as tmp:
        for lines in args.lines:
            load = os.getloadavg()[0]
            results.append((lines, load, *measure(lines, Path(tmp))))
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(f"{os.cpu_count()} CPUs; this process (export writer) peaked at {own} MiB")
    print(
        f"{'lines':>10} {'file MiB':>9} {'stored':>10} {'seconds':>8} {'lines/s':>9} "
        f"{'peak RSS MiB':>13} {'load':>5}"
    )
    for lines, load, stored, seconds, rss, size in results:
        print(
            f"{lines:>10,} {size / 2**20:>9.0f} {stored:>10,} {seconds:>8.1f} "
            f"{stored / seconds:>9,.0f} {rss / 1024:>13.0f} {load:>5.1f}"
        )


if __name__ == "__main__":
    main()
