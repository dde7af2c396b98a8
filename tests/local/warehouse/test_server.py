"""The embedded warehouse endpoint, driven the way the rest of the project drives it: through
clickhouse-connect's public API (raw HTTP only where a test checks the wire format itself)."""

from __future__ import annotations

import gzip
import http.client
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import clickhouse_connect
import lz4.frame
import pyarrow.parquet as pq
import pytest
import zstandard
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError
from clickhouse_connect.driver.external import ExternalData
from clickhouse_connect.driver.summary import QuerySummary

from cost_local.warehouse.engine import error_from_engine
from cost_local.warehouse.http_codec import (
    NEED_MORE,
    InsertSplit,
    split_insert,
    split_settings,
    statement_shape,
)
from tests.support.processes import WarehouseProcess, start_warehouse, warehouse_env

slow = pytest.mark.slow
ENGINE_VERSION_RE = r"\(version 2\d\.\d+\.\d+\.\d+\)"
COST_TABLE = """
    CREATE TABLE {name} (
        id UInt64,
        ChargePeriodStart DateTime64(3, 'UTC'),
        BilledCost Decimal(38, 12),
        ProviderName LowCardinality(String),
        ResourceId String,
        Tags Map(String, String),
        Note Nullable(String)
    ) ENGINE = MergeTree ORDER BY id
"""


def unique(prefix: str = "t") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def raw(
    endpoint: WarehouseProcess,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, http.client.HTTPMessage, bytes]:
    """One literal HTTP exchange: (status, headers, body as received, still encoded)."""
    conn = http.client.HTTPConnection(endpoint.host, endpoint.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.headers, response.read()
    finally:
        conn.close()


def cost_rows(n: int, start: int = 0) -> list[list[Any]]:
    base = datetime(2026, 10, 1, tzinfo=UTC)
    return [
        [
            i,
            base + timedelta(minutes=i),
            Decimal("0.000000123456") * (i + 1),
            ("AWS", "Azure", "GCP")[i % 3],
            f"res-{i}",
            {"team": f"t{i % 4}"},
            None if i % 2 else "note",
        ]
        for i in range(start, start + n)
    ]


@pytest.fixture(scope="module")
def client(warehouse: WarehouseProcess) -> Iterator[Client]:
    client = clickhouse_connect.get_client(host=warehouse.host, port=warehouse.port)
    yield client
    client.close()


@pytest.fixture
def cost_table(client: Client) -> str:
    name = unique("costs")
    client.command(COST_TABLE.format(name=name))
    return name


# --- pure functions: no process -----------------------------------------------------------


def test_inline_insert_data_starts_after_the_format_name_and_one_newline() -> None:
    head = b"INSERT INTO t (a, `b c`) SETTINGS x='FORMAT' FORMAT Native\n\x00'\x01"
    split = split_insert(head, complete=False)
    assert split == InsertSplit("INSERT INTO t (a, `b c`) SETTINGS x='FORMAT'", "Native", 59)
    assert head[59:] == b"\x00'\x01"
    assert split_insert(b"INSERT INTO t FORMAT Nat", complete=False) == NEED_MORE
    assert split_insert(b"INSERT INTO t VALUES (1)", complete=True) is None
    assert split_insert(b"SELECT 1", complete=False) is None


def test_insert_settings_split_off_so_from_infile_fits_between() -> None:
    assert split_settings("INSERT INTO t (a, settings) SETTINGS x = 'SELECT'") == (
        "INSERT INTO t (a, settings)",
        "SETTINGS x = 'SELECT'",
    )
    assert split_settings("INSERT INTO t") == ("INSERT INTO t", "")
    assert split_settings("INSERT INTO t SELECT * FROM input('a UInt8')") is None


def test_statement_shape_reads_the_format_outside_literals_and_calls() -> None:
    assert statement_shape("SELECT format('{}', 1) AS f FORMAT JSON") == (True, "JSON")
    assert statement_shape("SELECT 'FORMAT CSV'") == (True, None)
    assert statement_shape("(SELECT 1) FORMAT Native") == (True, "Native")
    assert statement_shape("CREATE TABLE x (a UInt8) ENGINE = Memory") == (False, None)


def test_engine_errors_keep_code_name_and_text_even_when_wrapped_twice() -> None:
    text = (
        "Code: 115. DB::Exception: Code: 115. DB::Exception: Unknown setting 'x'. "
        "(UNKNOWN_SETTING) (version 26.9.2.1). (UNKNOWN_SETTING)"
    )
    error = error_from_engine(RuntimeError(text))
    assert (error.code, error.name, error.http_status) == (115, "UNKNOWN_SETTING", 404)
    assert error.body("26.9.2.1") == (
        "Code: 115. DB::Exception: Unknown setting 'x'. (UNKNOWN_SETTING) (version 26.9.2.1)\n"
    )


# --- HTTP basics ------------------------------------------------------------------------------


@slow
def test_ping_and_a_bare_get_answer_ok(warehouse: WarehouseProcess, client: Client) -> None:
    assert raw(warehouse, "GET", "/ping")[::2] == (200, b"Ok.\n")
    assert raw(warehouse, "GET", "/")[::2] == (200, b"Ok.\n")
    assert raw(warehouse, "GET", "/nowhere")[0] == 404
    assert client.ping()


@slow
def test_a_get_with_a_query_param_answers_with_clickhouse_headers(
    warehouse: WarehouseProcess,
) -> None:
    status, headers, body = raw(warehouse, "GET", "/?" + urlencode({"query": "SELECT 1"}))
    assert (status, body) == (200, b"1\n")
    assert headers["X-ClickHouse-Format"] == "TabSeparated"
    assert headers["Content-Type"].startswith("text/tab-separated-values")
    assert headers["X-ClickHouse-Timezone"] == "Etc/UTC"
    assert headers["X-ClickHouse-Server-Display-Name"]
    uuid.UUID(headers["X-ClickHouse-Query-Id"])
    summary = json.loads(headers["X-ClickHouse-Summary"])
    assert summary["result_rows"] == "1" and summary["read_rows"] == "1"
    assert set(summary) >= {"read_bytes", "written_rows", "written_bytes", "elapsed_ns"}


@slow
def test_the_query_id_is_echoed_or_generated(warehouse: WarehouseProcess, client: Client) -> None:
    path = "/?" + urlencode({"query": "SELECT 1", "query_id": "my-query-42"})
    assert raw(warehouse, "GET", path)[1]["X-ClickHouse-Query-Id"] == "my-query-42"
    first = client.query("SELECT 1").summary["query_id"]
    second = client.query("SELECT 1").summary["query_id"]
    assert first and second and first != second
    assert client.query("SELECT 1", settings={"query_id": "fixed-1"}).query_id == "fixed-1"


@slow
def test_the_client_connects_and_reads_engine_version_and_timezone(client: Client) -> None:
    assert re.fullmatch(r"2\d\.\d+\.\d+\.\d+", client.server_version or "")
    assert str(client.server_tz) == "UTC"
    # the settings query at connect time found the real engine settings
    assert client.server_settings["max_execution_time"].readonly == 0
    assert client.get_client_setting("date_time_input_format") in (None, "best_effort")


@slow
def test_the_query_param_and_the_body_are_one_statement(
    warehouse: WarehouseProcess, client: Client
) -> None:
    table = unique()
    client.command(f"CREATE TABLE {table} (a UInt8, b String) ENGINE = MergeTree ORDER BY a")
    path = "/?" + urlencode({"query": f"INSERT INTO {table} FORMAT CSV"})
    assert raw(warehouse, "POST", path, b"1,x\n2,y\n")[0] == 200
    assert raw(warehouse, "POST", "/", f"INSERT INTO {table} FORMAT TSV\n3\tz\n".encode())[0] == 200
    select = "/?" + urlencode({"query": f"SELECT b FROM {table} WHERE a IN"})
    assert raw(warehouse, "POST", select, b"(1, 3) ORDER BY a")[2] == b"x\nz\n"
    assert (
        raw(warehouse, "POST", "/?default_format=JSONEachRow", b"SELECT 7 AS n")[2] == b'{"n":7}\n'
    )


# --- output formats and commands ------------------------------------------------------------


@slow
def test_every_output_format_family_round_trips(client: Client, cost_table: str) -> None:
    client.insert(cost_table, cost_rows(300))
    sql = f"SELECT * FROM {cost_table} ORDER BY id"
    rows = client.query(sql).result_rows  # Native
    assert rows[1][2] == Decimal("0.000000246912") and rows[1][5] == {"team": "t1"}
    assert client.query_df(sql)["ResourceId"].tolist()[:2] == ["res-0", "res-1"]
    assert client.query_np(f"SELECT id FROM {cost_table}").shape == (300, 1)
    arrow = client.query_arrow(sql)  # Arrow
    assert arrow.num_rows == 300 and arrow.column_names[0] == "id"
    with client.query_arrow_stream(sql) as stream:  # ArrowStream
        assert sum(batch.num_rows for batch in stream) == 300
    assert client.query_df_arrow(sql).shape == (300, 7)
    json_rows = json.loads(client.raw_query(f"SELECT id FROM {cost_table} LIMIT 2", fmt="JSON"))
    assert [int(row["id"]) for row in json_rows["data"]] == [0, 1]
    assert client.raw_query("SELECT 1 AS a FORMAT JSONEachRow") == b'{"a":1}\n'
    assert json.loads(client.raw_query("SELECT 1 AS a", fmt="JSONCompact"))["data"] == [[1]]
    assert (
        client.raw_query("SELECT 'x' AS a, 2 AS b", fmt="TabSeparatedWithNames") == b"a\tb\nx\t2\n"
    )
    assert client.raw_query("SELECT 'x', 2", fmt="CSV") == b'"x",2\n'
    parquet = client.raw_query(f"SELECT id FROM {cost_table}", fmt="Parquet")
    assert pq.read_table(io.BytesIO(parquet)).num_rows == 300
    assert client.query(f"SELECT id FROM {cost_table} WHERE id > 10000").result_rows == []
    assert client.query(f"SELECT id, Tags FROM {cost_table} LIMIT 0").column_names == ("id", "Tags")


@slow
def test_commands_return_values_or_summaries(client: Client, cost_table: str) -> None:
    assert client.command("SELECT 1") == 1
    assert client.command("SELECT 'a', 'b'") == ["a", "b"]
    assert client.command(f"SELECT ResourceId FROM {cost_table}") == ""  # a result, but empty
    summary = client.command(f"ALTER TABLE {cost_table} ADD COLUMN extra UInt8 DEFAULT 0")
    assert isinstance(summary, QuerySummary)  # DDL: a summary, not a value
    assert summary.written_rows == 0
    client.insert(cost_table, [[*row, 1] for row in cost_rows(5)])
    copied = client.command(f"INSERT INTO {cost_table} SELECT * FROM {cost_table}")
    assert isinstance(copied, QuerySummary) and copied.written_rows == 5
    assert client.command(f"SELECT count() FROM {cost_table}") == 10


# --- inserts and compression ----------------------------------------------------------------


@slow
@pytest.mark.parametrize("compress", [False, "lz4", "zstd", "gzip", True])
def test_inserts_arrive_whole_with_each_request_compression(
    warehouse: WarehouseProcess, compress: str | bool
) -> None:
    client = clickhouse_connect.get_client(
        host=warehouse.host, port=warehouse.port, compress=compress
    )
    table = unique()
    client.command(COST_TABLE.format(name=table))
    rows = cost_rows(8_000)
    assert client.insert(table, rows).written_rows == 8_000
    frame = client.query_df(f"SELECT * FROM {table} ORDER BY id")
    arrow = client.query_arrow(f"SELECT * FROM {table} ORDER BY id")
    assert client.insert_df(table, frame).written_rows == 8_000
    assert client.insert_arrow(table, arrow).written_rows == 8_000
    totals = client.query(
        f"SELECT count(), countDistinct(id), sum(BilledCost), countIf(Note IS NULL) FROM {table}"
    ).result_rows[0]
    expected = sum((row[2] for row in rows), Decimal(0)) * 3
    assert totals == (24_000, 8_000, expected, 12_000)
    client.close()


@slow
@pytest.mark.parametrize("encoding", ["zstd", "lz4", "gzip", "deflate"])
def test_responses_are_compressed_when_the_client_accepts_it(
    warehouse: WarehouseProcess, encoding: str
) -> None:
    sql = "SELECT number FROM numbers(5000) FORMAT TSV"
    path = "/?" + urlencode({"query": sql, "enable_http_compression": "1"})
    status, headers, body = raw(warehouse, "GET", path, headers={"Accept-Encoding": encoding})
    assert status == 200 and headers["Content-Encoding"] == encoding
    decode = {
        "zstd": zstandard.ZstdDecompressor().decompress,
        "lz4": lz4.frame.decompress,
        "gzip": gzip.decompress,
        "deflate": zlib.decompress,
    }[encoding]
    assert decode(body) == b"".join(b"%d\n" % i for i in range(5000))
    off = "/?" + urlencode({"query": sql, "enable_http_compression": "0"})
    assert (
        "Content-Encoding"
        not in raw(warehouse, "GET", off, headers={"Accept-Encoding": encoding})[1]
    )


@slow
def test_a_chunked_compressed_request_body_streams_into_the_table(
    warehouse: WarehouseProcess, client: Client
) -> None:
    table = unique()
    client.command(f"CREATE TABLE {table} (a UInt32, b String) ENGINE = MergeTree ORDER BY a")
    frames = [
        lz4.frame.compress(b"".join(b"%d,row\n" % i for i in range(k, k + 1000)))
        for k in range(0, 50_000, 1000)
    ]

    def body() -> Iterator[bytes]:
        yield from frames  # http.client sends an iterable with chunked transfer coding

    conn = http.client.HTTPConnection(warehouse.host, warehouse.port, timeout=30)
    path = "/?" + urlencode({"query": f"INSERT INTO {table} FORMAT CSV"})
    conn.request(
        "POST", path, body=body(), headers={"Content-Encoding": "lz4"}, encode_chunked=True
    )
    response = conn.getresponse()
    assert response.status == 200, response.read()
    assert json.loads(response.headers["X-ClickHouse-Summary"])["written_rows"] == "50000"
    conn.close()
    assert client.command(f"SELECT count() FROM {table}") == 50_000


# --- parameters, settings, database ---------------------------------------------------------


@slow
def test_server_side_parameters_bind_typed_values(client: Client) -> None:
    tricky = "it's\ta\nb\\c ü 'x' {y:String}"
    result = client.query(
        "SELECT {s:String}, {a:Array(String)}, {d:DateTime64(3)}, {n:Decimal(38, 12)}, "
        "dummy FROM {db:Identifier}.{t:Identifier}",
        parameters={
            "s": tricky,
            "a": ["x'", "y"],
            "d": datetime(2026, 1, 2, 3, 4, 5, 6000),
            "n": Decimal("0.000000000001"),
            "db": "system",
            "t": "one",
        },
    ).result_rows
    assert result == [
        (tricky, ["x'", "y"], datetime(2026, 1, 2, 3, 4, 5, 6000), Decimal("1E-12"), 0)
    ]
    with pytest.raises(DatabaseError) as missing:
        client.query("SELECT {absent:String}")
    assert missing.value.name == "UNKNOWN_QUERY_PARAMETER"


@slow
def test_large_parameters_travel_as_a_multipart_form(warehouse: WarehouseProcess) -> None:
    client = clickhouse_connect.get_client(
        host=warehouse.host, port=warehouse.port, form_encode_query_params=True
    )
    value = "v" * 200_000
    assert client.query("SELECT length({v:String})", parameters={"v": value}).result_rows == [
        (200_000,)
    ]
    client.close()


@slow
def test_external_data_is_a_temporary_table_for_that_query_only(client: Client) -> None:
    data = ExternalData(
        file_name="lookup.csv", data=b"1,one\n2,two\n", fmt="CSV", structure=["k UInt8", "v String"]
    )
    rows = client.query("SELECT v FROM lookup ORDER BY k", external_data=data).result_rows
    assert rows == [("one",), ("two",)]
    typed = ExternalData(file_name="typed", data=b"5\tx\n", types=["UInt8", "String"])
    assert client.query("SELECT _1, _2 FROM typed", external_data=typed).result_rows == [(5, "x")]
    with pytest.raises(DatabaseError) as gone:
        client.query("SELECT * FROM lookup")
    assert gone.value.code == 60


@slow
def test_settings_apply_to_one_request_only(warehouse: WarehouseProcess, client: Client) -> None:
    with pytest.raises(DatabaseError) as slow_query:
        client.query(
            "SELECT sleep(0.5) FROM numbers(4)",
            settings={"max_execution_time": 0.3, "max_block_size": 1},
        )
    assert slow_query.value.code == 159 and "TIMEOUT_EXCEEDED" in str(slow_query.value)
    assert client.query("SELECT getSetting('max_execution_time')").result_rows == [(0,)]
    tokyo = client.query("SELECT now()", settings={"session_timezone": "Asia/Tokyo"})
    assert tokyo.first_row is not None
    assert tokyo.first_row[0].utcoffset() == timedelta(hours=9)
    path = "/?" + urlencode({"query": "SELECT timezone()", "session_timezone": "Asia/Tokyo"})
    _, headers, body = raw(warehouse, "GET", path)
    assert headers["X-ClickHouse-Timezone"] == "Asia/Tokyo" and body == b"Asia/Tokyo\n"
    assert client.query("SELECT timezone()").result_rows == [("Etc/UTC",)]


@slow
def test_unknown_settings_are_refused_like_clickhouse_does(client: Client) -> None:
    with pytest.raises(DatabaseError) as refused:
        client.query("SELECT 1", settings={"no_such_setting": 1})
    assert refused.value.code == 115
    assert "Unknown setting 'no_such_setting'" in str(refused.value)


@slow
def test_concurrent_requests_never_share_params_settings_or_database(
    warehouse: WarehouseProcess, client: Client
) -> None:
    other = unique("db")
    client.command(f"CREATE DATABASE {other}")
    failures: list[str] = []

    def worker(n: int) -> None:
        database = other if n % 2 else "default"
        own = clickhouse_connect.get_client(
            host=warehouse.host, port=warehouse.port, database=database
        )
        try:
            for i in range(25):
                got = own.query(
                    "SELECT {v:String}, getSetting('max_block_size'), currentDatabase()",
                    parameters={"v": f"{n}-{i}"},
                    settings={"max_block_size": 1000 + n},
                ).first_row
                if got != (f"{n}-{i}", 1000 + n, database):
                    failures.append(f"thread {n} request {i} got {got}")
        except Exception as exc:  # collected: assertion errors in threads are otherwise lost
            failures.append(f"thread {n}: {exc!r}")
        finally:
            own.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


@slow
def test_the_database_param_picks_the_database_and_an_unknown_one_fails(
    warehouse: WarehouseProcess, client: Client
) -> None:
    other = unique("db")
    client.command(f"CREATE DATABASE {other}")
    client.command(f"CREATE TABLE {other}.t (a UInt8) ENGINE = MergeTree ORDER BY a")
    scoped = clickhouse_connect.get_client(host=warehouse.host, port=warehouse.port, database=other)
    scoped.insert("t", [[1], [2]])
    assert scoped.command("SELECT count() FROM t") == 2
    assert client.command(f"SELECT count() FROM {other}.t") == 2
    with pytest.raises(DatabaseError) as unknown:
        clickhouse_connect.get_client(host=warehouse.host, port=warehouse.port, database="no_db")
    assert unknown.value.code == 81


# --- errors ---------------------------------------------------------------------------------


@slow
def test_an_unknown_table_is_a_404_with_code_60_and_the_engine_text(
    warehouse: WarehouseProcess, client: Client
) -> None:
    status, headers, body = raw(warehouse, "POST", "/", b"SELECT * FROM no_such_table")
    assert status == 404 and headers["X-ClickHouse-Exception-Code"] == "60"
    assert re.fullmatch(
        rf"Code: 60\. DB::Exception: .*no_such_table.*\. \(UNKNOWN_TABLE\) {ENGINE_VERSION_RE}\n",
        body.decode(),
    )
    with pytest.raises(DatabaseError) as error:
        client.query("SELECT * FROM no_such_table")
    assert (error.value.code, error.value.name) == (60, "UNKNOWN_TABLE")
    assert "no_such_table" in str(error.value)


@slow
def test_a_syntax_error_is_a_400_with_code_62(warehouse: WarehouseProcess, client: Client) -> None:
    status, headers, body = raw(warehouse, "POST", "/", b"SELEC 1")
    assert status == 400 and headers["X-ClickHouse-Exception-Code"] == "62"
    assert body.startswith(b"Code: 62. DB::Exception: Syntax error")
    with pytest.raises(DatabaseError, match=r"Syntax error.*\(SYNTAX_ERROR\)") as error:
        client.command("SELEC 1")
    assert error.value.code == 62


@slow
@pytest.mark.parametrize("readonly", [None, "0"])
def test_get_requests_cannot_modify_data(warehouse: WarehouseProcess, readonly: str | None) -> None:
    query = {"query": "CREATE TABLE never (a UInt8) ENGINE = Memory"}
    if readonly is not None:
        query["readonly"] = readonly  # asking for write access over GET changes nothing
    status, headers, body = raw(warehouse, "GET", "/?" + urlencode(query))
    assert status == 500 and headers["X-ClickHouse-Exception-Code"] == "164"
    assert b"method GET implies readonly" in body


@slow
def test_bad_insert_data_fails_cleanly_and_the_connection_stays_usable(
    warehouse: WarehouseProcess, client: Client
) -> None:
    table = unique()
    client.command(f"CREATE TABLE {table} (a UInt8) ENGINE = MergeTree ORDER BY a")
    conn = http.client.HTTPConnection(warehouse.host, warehouse.port, timeout=30)
    path = "/?" + urlencode({"query": f"INSERT INTO {table} FORMAT Native"})
    conn.request("POST", path, body=b"\x01\x05" + b"garbage" * 1000)
    response = conn.getresponse()
    assert response.status >= 400 and response.headers["X-ClickHouse-Exception-Code"]
    response.read()
    conn.request("GET", "/?" + urlencode({"query": f"SELECT count() FROM {table}"}))
    assert conn.getresponse().read() == b"0\n"  # same keep-alive connection
    conn.close()
    with pytest.raises(DatabaseError):
        client.raw_insert(table, ["a"], b"1\nnot a number\n", fmt="CSV")
    assert client.command(f"SELECT count() FROM {table}") == 0


@slow
def test_an_interrupted_or_corrupt_insert_body_writes_nothing(
    warehouse: WarehouseProcess, client: Client
) -> None:
    table = unique()
    client.command(f"CREATE TABLE {table} (a UInt32) ENGINE = MergeTree ORDER BY a")
    insert = "/?" + urlencode({"query": f"INSERT INTO {table} FORMAT CSV"})
    with socket.create_connection((warehouse.host, warehouse.port), timeout=10) as sock:
        sock.sendall(
            f"POST {insert} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
            + b"6\r\n1\n2\n3\n\r\n"
        )  # ...and the client goes away before the last chunk
    corrupt = lz4.frame.compress(b"4\n5\n" * 100)[:-12]  # cut off inside the frame
    status, headers, _ = raw(warehouse, "POST", insert, corrupt, {"Content-Encoding": "lz4"})
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (500, "271")
    time.sleep(0.3)  # give a (wrongly) surviving insert time to land
    assert client.command(f"SELECT count() FROM {table}") == 0


@slow
def test_insert_select_from_input_is_refused_with_a_clear_error(
    warehouse: WarehouseProcess, client: Client
) -> None:
    table = unique()
    client.command(f"CREATE TABLE {table} (a UInt32) ENGINE = MergeTree ORDER BY a")
    sql = f"INSERT INTO {table} SELECT x * 10 FROM input('x UInt32') FORMAT CSV"
    status, headers, body = raw(warehouse, "POST", "/?" + urlencode({"query": sql}), b"1\n")
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (501, "48")
    assert b"input()" in body


@slow
def test_an_insert_refused_midstream_raises_the_engine_error_in_the_client(
    client: Client,
) -> None:
    table = unique()
    client.command(
        f"CREATE TABLE {table} (a UInt32, CONSTRAINT small CHECK a < 150000) "
        "ENGINE = MergeTree ORDER BY a"
    )
    with pytest.raises(DatabaseError) as refused:
        client.insert(
            table, [[i] for i in range(200_000)], settings={"max_insert_block_size": 10_000}
        )
    assert refused.value.name == "VIOLATED_CONSTRAINT"
    assert client.command("SELECT 1") == 1  # the pooled connection still works


# --- authentication and start-up ------------------------------------------------------------


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WarehouseProcess]:
    process = start_warehouse(tmp_path_factory.mktemp("guarded"), password="s3cret-Pw")
    yield process
    process.stop()


@slow
def test_a_password_protected_endpoint_refuses_missing_or_wrong_credentials(
    guarded: WarehouseProcess,
) -> None:
    for password in ("", "wrong"):
        with pytest.raises(DatabaseError) as refused:
            clickhouse_connect.get_client(host=guarded.host, port=guarded.port, password=password)
        assert refused.value.code == 516 and refused.value.name == "AUTHENTICATION_FAILED"
    with pytest.raises(DatabaseError):
        clickhouse_connect.get_client(
            host=guarded.host, port=guarded.port, username="other", password="s3cret-Pw"
        )
    client = guarded.client()
    assert client.command("SELECT 1") == 1
    endpoint = guarded
    assert raw(endpoint, "GET", "/ping")[2] == b"Ok.\n"  # health checks need no credentials
    assert raw(endpoint, "GET", "/?query=SELECT%201")[0] == 403


@slow
def test_credentials_work_from_headers_basic_auth_and_url_params(guarded: WarehouseProcess) -> None:
    endpoint = guarded
    query = "/?query=SELECT%201"
    by_headers = {"X-ClickHouse-User": "default", "X-ClickHouse-Key": "s3cret-Pw"}
    assert raw(endpoint, "GET", query, headers=by_headers)[2] == b"1\n"
    params = "/?" + urlencode({"query": "SELECT 2", "user": "default", "password": "s3cret-Pw"})
    assert raw(endpoint, "GET", params)[2] == b"2\n"
    wrong = {"X-ClickHouse-User": "default", "X-ClickHouse-Key": "nope"}
    status, headers, body = raw(endpoint, "GET", query, headers=wrong)
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (403, "516")
    assert b"nope" not in body and b"s3cret" not in body


@slow
def test_the_password_is_never_on_the_command_line_or_in_the_output(
    guarded: WarehouseProcess,
) -> None:
    cmdline = Path(f"/proc/{guarded.pid}/cmdline").read_bytes()
    assert b"s3cret" not in cmdline
    assert "s3cret" not in guarded.ready_line and "s3cret" not in guarded.log()


def run_cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "cost_local.warehouse.server", *args]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, env=warehouse_env()
    )


@slow
def test_listening_beyond_loopback_without_a_password_is_refused(tmp_path: Path) -> None:
    result = run_cli("--data-dir", str(tmp_path / "data"), "--host", "0.0.0.0", "--port", "0")
    assert result.returncode == 2
    assert "refusing to listen on 0.0.0.0 without a password" in result.stderr
    assert not (tmp_path / "data").exists()


@slow
def test_a_busy_port_is_reported_in_one_line_with_exit_code_2(
    warehouse: WarehouseProcess, tmp_path: Path
) -> None:
    result = run_cli("--data-dir", str(tmp_path), "--port", str(warehouse.port))
    assert result.returncode == 2
    assert result.stderr == (
        f"cost-warehouse: port {warehouse.port} on 127.0.0.1 is already in use\n"
    )


@slow
def test_a_second_endpoint_on_the_same_directory_is_refused(warehouse: WarehouseProcess) -> None:
    result = run_cli("--data-dir", str(warehouse.data_dir), "--port", "0")
    assert result.returncode == 1
    assert result.stderr == (
        f"cost-warehouse: cannot open {warehouse.data_dir}: the data directory is in use by "
        f"another process (PID: {warehouse.pid})\n"
    )


@slow
def test_it_says_when_it_is_ready_and_stops_quickly_on_sigterm(tmp_path: Path) -> None:
    process = start_warehouse(tmp_path / "data")
    assert process.ready_line == (
        f"cost-warehouse: serving ClickHouse HTTP on http://127.0.0.1:{process.port} "
        f"(data {(tmp_path / 'data').resolve()}, engine {process.client().server_version})"
    )
    started = time.monotonic()
    os.kill(process.pid, signal.SIGTERM)
    assert process.process.wait(5) == 0
    assert time.monotonic() - started < 2
    process.stop()
    again = start_warehouse(tmp_path / "data")  # the directory lock was released
    assert again.client().command("SELECT 1") == 1
    again.stop()


IN_THREAD = textwrap.dedent(
    """
    import sys
    import clickhouse_connect
    from cost_local.warehouse.server import serve

    for attempt in range(2):  # the second round proves shutdown() released the directory
        server = serve(sys.argv[1], "127.0.0.1", 0)
        host, port = server.server_address[:2]
        client = clickhouse_connect.get_client(host=host, port=port)
        print(client.command("SELECT 40 + 2"))
        client.close()
        server.shutdown()
    """
)


@slow
def test_serve_runs_in_a_thread_and_shutdown_releases_the_directory(tmp_path: Path) -> None:
    # In a child process: the engine binds its process to one data directory for good.
    result = subprocess.run(
        [sys.executable, "-c", IN_THREAD, str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=60,
        env=warehouse_env(),
    )
    assert (result.returncode, result.stdout) == (0, "42\n42\n"), result.stderr


# --- several processes, crashes -------------------------------------------------------------

WRITER = textwrap.dedent(
    """
    import json, sys
    import clickhouse_connect
    port, table, worker, batches = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    client = clickhouse_connect.get_client(host="127.0.0.1", port=port)
    seen = []
    for b in range(batches):
        rows = [[worker, b, i] for i in range(500)]
        client.insert(table, rows, column_names=["worker", "batch", "i"])
        seen.append(client.command(f"SELECT count() FROM {table}"))
    mine = client.command(f"SELECT count() FROM {table} WHERE worker = {worker}")
    print(json.dumps({"seen": seen, "mine": mine}))
    """
)


@slow
def test_two_processes_insert_and_read_at_the_same_time(
    warehouse: WarehouseProcess, client: Client
) -> None:
    table = unique()
    client.command(
        f"CREATE TABLE {table} (worker UInt8, batch UInt16, i UInt16) ENGINE = MergeTree "
        "ORDER BY (worker, batch, i)"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(warehouse.port), table, str(w), "12"],
            stdout=subprocess.PIPE,
            text=True,
        )
        for w in (1, 2)
    ]
    outputs = [json.loads(p.communicate(timeout=60)[0]) for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    for out in outputs:
        assert out["mine"] == 12 * 500
        assert out["seen"] == sorted(out["seen"])  # counts only grow
    assert client.command(f"SELECT count() FROM {table}") == 2 * 12 * 500
    assert client.command(f"SELECT uniqExact(worker, batch) FROM {table}") == 24


@slow
def test_every_acknowledged_insert_survives_kill_9_and_restart(tmp_path: Path) -> None:
    first = start_warehouse(tmp_path / "data")
    client = first.client()
    client.command("CREATE TABLE acked (batch UInt32, i UInt32) ENGINE = MergeTree ORDER BY batch")
    acknowledged: list[int] = []
    stop = threading.Event()

    def writer() -> None:
        own = first.client()
        batch = 0
        while not stop.is_set():
            try:
                own.insert("acked", [[batch, i] for i in range(1000)])
            except Exception:
                return  # the endpoint is gone
            acknowledged.append(batch)  # only after the HTTP 200
            batch += 1

    thread = threading.Thread(target=writer)
    thread.start()
    deadline = time.monotonic() + 10
    while len(acknowledged) < 10 and time.monotonic() < deadline:
        time.sleep(0.02)
    first.kill()  # SIGKILL while inserts are in flight
    stop.set()
    thread.join(10)
    assert len(acknowledged) >= 10

    second = start_warehouse(tmp_path / "data")
    try:
        counts = dict(
            second.client().query("SELECT batch, count() FROM acked GROUP BY batch").result_rows
        )
        assert all(counts.get(batch) == 1000 for batch in acknowledged)
    finally:
        second.stop()
