"""The chDB side of the embedded warehouse: one engine per data directory, one short-lived
connection per HTTP request, settings and database applied to that connection only, and engine
errors turned into the exact ClickHouse error shape (code, name, HTTP status, body text)."""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import chdb

# Per-request settings that only shape the HTTP exchange: the HTTP layer honours them itself
# and they are never forwarded to the engine (a real server consumes them in its HTTP handler).
HTTP_LEVEL_SETTINGS = frozenset(
    {
        "enable_http_compression",
        "http_zlib_compression_level",
        "send_progress_in_http_headers",
        "http_headers_progress_interval_ms",
        "cancel_http_readonly_queries_on_client_close",
        "http_response_buffer_size",
        "http_wait_end_of_query",
        "add_http_cors_header",
        "http_native_compression_disable_checksumming_on_decompress",
    }
)

_SETTING_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CODE_RE = re.compile(r"Code: (\d+)\. DB::Exception: ")
# The engine ends messages with "(NAME)" and sometimes "(version X)", repeated when it wraps an
# inner exception: "... 'x'. (UNKNOWN_SETTING) (version 26.9.2.1). (UNKNOWN_SETTING)".
_TRAILER_RE = re.compile(r"(?:\s*\.?\s*\((?:version [^()]*|[A-Z][A-Z0-9_]*)\))+\s*$")
_NAME_RE = re.compile(r"\(([A-Z][A-Z0-9_]*)\)")

# ClickHouse's HTTPHandler exceptionCodeToHTTPStatus, by error name.
_STATUS_BY_NAME: dict[str, int] = {
    "REQUIRED_PASSWORD": 401,
    **dict.fromkeys(
        ("UNKNOWN_USER", "WRONG_PASSWORD", "AUTHENTICATION_FAILED", "SET_NON_GRANTED_ROLE"), 403
    ),
    **dict.fromkeys(
        (
            "BAD_ARGUMENTS",
            "CANNOT_COMPILE_REGEXP",
            "CANNOT_PARSE_TEXT",
            "CANNOT_PARSE_ESCAPE_SEQUENCE",
            "CANNOT_PARSE_QUOTED_STRING",
            "CANNOT_PARSE_DATE",
            "CANNOT_PARSE_DATETIME",
            "CANNOT_PARSE_NUMBER",
            "CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING",
            "CANNOT_PARSE_IPV4",
            "CANNOT_PARSE_IPV6",
            "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
            "CANNOT_PARSE_UUID",
            "DUPLICATE_COLUMN",
            "ILLEGAL_COLUMN",
            "UNKNOWN_ELEMENT_IN_AST",
            "ILLEGAL_TYPE_OF_ARGUMENT",
            "TOO_DEEP_AST",
            "TOO_BIG_AST",
            "UNEXPECTED_AST_STRUCTURE",
            "SYNTAX_ERROR",
            "INCORRECT_DATA",
            "TYPE_MISMATCH",
            "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE",
        ),
        400,
    ),
    **dict.fromkeys(
        (
            "UNKNOWN_TABLE",
            "UNKNOWN_FUNCTION",
            "UNKNOWN_IDENTIFIER",
            "UNKNOWN_TYPE",
            "UNKNOWN_STORAGE",
            "UNKNOWN_DATABASE",
            "UNKNOWN_SETTING",
            "UNKNOWN_DIRECTION_OF_SORTING",
            "UNKNOWN_AGGREGATE_FUNCTION",
            "UNKNOWN_FORMAT",
            "UNKNOWN_DATABASE_ENGINE",
            "UNKNOWN_TYPE_OF_QUERY",
            "UNKNOWN_ROLE",
        ),
        404,
    ),
    "QUERY_IS_TOO_LARGE": 413,
    "NOT_IMPLEMENTED": 501,
    "SOCKET_TIMEOUT": 503,
    "CANNOT_OPEN_FILE": 503,
    "CANNOT_SCHEDULE_TASK": 503,
    "HTTP_LENGTH_REQUIRED": 411,
    "TIMEOUT_EXCEEDED": 408,
    "ACCESS_DENIED": 403,
}


class EngineError(Exception):
    """A ClickHouse exception: numeric code, symbolic name and message, as the server reports it."""

    def __init__(self, code: int, name: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.name = name
        self.message = message

    @property
    def http_status(self) -> int:
        """The HTTP status a ClickHouse server answers this error with."""
        return _STATUS_BY_NAME.get(self.name, 500)

    def body(self, version: str) -> str:
        """The response body ClickHouse sends: `Code: N. DB::Exception: msg. (NAME) (version V)`."""
        text = self.message if self.message.endswith(".") else self.message + "."
        return f"Code: {self.code}. DB::Exception: {text} ({self.name}) (version {version})\n"


def error_from_engine(exc: BaseException) -> EngineError:
    """Parse the engine's own error text (chdb.ChdbError, RuntimeError) into an EngineError."""
    if isinstance(exc, EngineError):
        return exc
    text = str(exc)
    matches = list(_CODE_RE.finditer(text))
    if not matches:
        return EngineError(1001, "STD_EXCEPTION", text.strip() or type(exc).__name__)
    inner = matches[-1]  # the engine may wrap the same exception several times
    message = text[inner.end() :].strip()
    trailer = _TRAILER_RE.search(message)
    name = "UNKNOWN_EXCEPTION"
    if trailer:
        names = _NAME_RE.findall(trailer.group(0))
        if names:
            name = names[0]
        message = message[: trailer.start()].rstrip()
    return EngineError(int(inner.group(1)), name, message)


@dataclass(frozen=True)
class QueryStats:
    """What one statement read, wrote and returned; becomes the X-ClickHouse-Summary header."""

    read_rows: int = 0
    read_bytes: int = 0
    written_rows: int = 0
    written_bytes: int = 0
    result_rows: int = 0
    result_bytes: int = 0
    elapsed_ns: int = 0

    def summary(self) -> dict[str, str]:
        """The summary in ClickHouse's key order, values as strings like the real header."""
        return {
            "read_rows": str(self.read_rows),
            "read_bytes": str(self.read_bytes),
            "written_rows": str(self.written_rows),
            "written_bytes": str(self.written_bytes),
            "total_rows_to_read": "0",
            "result_rows": str(self.result_rows),
            "result_bytes": str(self.result_bytes),
            "elapsed_ns": str(self.elapsed_ns),
        }


@dataclass(frozen=True)
class ExternalTable:
    """Request-scoped data sent with a query (multipart file): a temporary table for that query."""

    name: str
    structure: str
    fmt: str
    data: bytes


def quote_identifier(name: str) -> str:
    """Backquote a database/table name for SQL text."""
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def quote_literal(value: str) -> str:
    """Single-quote a value: the engine coerces quoted text to the setting's own type."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def set_statement(settings: Mapping[str, str]) -> str:
    """One `SET a = 'x', b = 'y'` statement; names must look like setting names."""
    for name in settings:
        if not _SETTING_NAME_RE.match(name):
            raise EngineError(115, "UNKNOWN_SETTING", f"Unknown setting '{name}'")
    return "SET " + ", ".join(f"{n} = {quote_literal(v)}" for n, v in settings.items())


def _types_to_structure(types: str) -> str:
    """`<name>_types=UInt8,String` becomes columns `_1 UInt8, _2 String`, as ClickHouse does."""
    return ", ".join(f"_{i} {t.strip()}" for i, t in enumerate(types.split(","), start=1))


def external_table(name: str, data: bytes, params: Mapping[str, str]) -> ExternalTable:
    """Describe one external table from its `<name>_structure|_types|_format` parameters."""
    structure = params.get(f"{name}_structure")
    types = params.get(f"{name}_types")
    if not structure and not types:
        raise EngineError(
            36,
            "BAD_ARGUMENTS",
            f"Neither structure nor types have not been provided for external table {name}",
        )
    return ExternalTable(
        name=name,
        structure=structure or _types_to_structure(types or ""),
        fmt=params.get(f"{name}_format", "TabSeparated"),
        data=data,
    )


def _check_not_locked(data_dir: Path) -> None:
    """Fail clearly if another process owns data_dir (the engine flocks <dir>/status; its own
    error would only say "Error initializing EmbeddedServer")."""
    status = data_dir / "status"
    if not status.exists():
        return
    with status.open("rb") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = handle.read(200).decode(errors="replace").splitlines()[:1]
            raise EngineError(
                76,
                "CANNOT_OPEN_FILE",
                f"the data directory is in use by another process ({' '.join(owner) or 'unknown'})",
            ) from None
        fcntl.flock(handle, fcntl.LOCK_UN)


class Engine:
    """The chDB store of one data directory. Thread-safe: each call runs on its own connection,
    so a request's database, settings and temporary tables can never leak into another's."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        _check_not_locked(self.data_dir)
        try:
            # The anchor connection keeps the engine (and the directory lock) alive between
            # requests: chDB shuts the engine down when its last connection closes.
            self._anchor: Any = chdb.connect(str(self.data_dir))
            info = self._anchor.query("SELECT version(), timezone()", "TabSeparated").bytes()
            self.version, self.timezone = info.decode().rstrip("\n").split("\t")
            self.http_defaults = self._http_defaults()
        except Exception as exc:
            raise error_from_engine(exc) from exc
        # Request bodies wait here (next to the data, not in a RAM-backed /tmp) until complete;
        # leftovers of a killed process are dropped.
        self._spool_dir = self.data_dir / "http_spool"
        shutil.rmtree(self._spool_dir, ignore_errors=True)
        self._spool_dir.mkdir()
        self._closed = False
        self._active = 0
        self._idle = threading.Condition()

    def _http_defaults(self) -> dict[str, str]:
        """Server values of the HTTP-level settings, as system.settings reports them to clients."""
        names = ", ".join(quote_literal(n) for n in sorted(HTTP_LEVEL_SETTINGS))
        sql = f"SELECT name, value FROM system.settings WHERE name IN ({names})"  # noqa: S608
        text = self._anchor.query(sql, "TabSeparated").bytes().decode()
        return dict(line.split("\t", 1) for line in text.splitlines() if "\t" in line)

    @contextmanager
    def _connection(
        self,
        database: str | None,
        settings: Mapping[str, str],
        external_tables: Sequence[ExternalTable] = (),
    ) -> Iterator[Any]:
        """A fresh connection prepared for one request (connecting costs well under 1 ms)."""
        with self._idle:
            if self._closed:
                raise EngineError(
                    210, "NETWORK_ERROR", "cost-warehouse is shutting down; retry the request"
                )
            self._active += 1
        conn: Any = None
        try:
            conn = chdb.connect(str(self.data_dir))
            if database:
                conn.query(f"USE {quote_identifier(database)}", "TabSeparated")
            for table in external_tables:
                self._load_external(conn, table)
            # After the temporary tables: a `readonly` setting must not block creating them.
            if settings:
                conn.query(set_statement(settings), "TabSeparated")
            yield conn
        except (chdb.ChdbError, RuntimeError) as exc:
            raise error_from_engine(exc) from exc
        finally:
            if conn is not None:
                conn.close()
            with self._idle:
                self._active -= 1
                self._idle.notify_all()

    @staticmethod
    def _load_external(conn: Any, table: ExternalTable) -> None:
        """Create and fill the request's temporary table (visible on this connection only)."""
        name = quote_identifier(table.name)
        conn.query(f"CREATE TEMPORARY TABLE {name} ({table.structure})", "TabSeparated")
        if table.data:
            inserter = conn.send_insert(f"INSERT INTO {name}", table.fmt)
            inserter.append(table.data)
            inserter.finish()

    def execute(
        self,
        sql: str | bytes,
        *,
        fmt: str,
        params: Mapping[str, str] | None = None,
        database: str | None = None,
        settings: Mapping[str, str] | None = None,
        external_tables: Sequence[ExternalTable] = (),
    ) -> tuple[bytes, QueryStats]:
        """Run one statement; return its output (in `fmt` unless the SQL names one) and stats."""
        started = time.perf_counter_ns()
        with self._connection(database, settings or {}, external_tables) as conn:
            result = conn.query(sql, fmt, params=dict(params or {}))
            body: bytes = result.bytes() or b""
            stats = QueryStats(
                read_rows=result.storage_rows_read(),
                read_bytes=result.storage_bytes_read(),
                written_rows=result.rows_written(),
                written_bytes=result.bytes_written(),
                result_rows=result.rows_read(),
                result_bytes=result.bytes_read(),
                elapsed_ns=time.perf_counter_ns() - started,
            )
        return body, stats

    def insert(
        self,
        target: str,
        fmt: str,
        chunks: Iterable[bytes],
        *,
        clause: str = "",
        database: str | None = None,
        settings: Mapping[str, str] | None = None,
    ) -> QueryStats:
        """Insert `fmt`-encoded data into `target` (`INSERT INTO t (a, b)`, with an optional
        `SETTINGS ...` clause): all of it once the body is complete, or nothing if reading it
        fails. When this returns, the rows are on disk: they survive kill -9 of the process.

        The body is spooled to a file and read with INSERT ... FROM INFILE because chDB's
        streaming inserter (send_insert) reports success even when the engine rejects rows
        (a CHECK constraint, a failing materialized view): the rows silently go missing."""
        started = time.perf_counter_ns()
        fd, spool = tempfile.mkstemp(dir=self._spool_dir, prefix="insert-", suffix=".body")
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    out.write(chunk)
            sql = f"{target} FROM INFILE {quote_literal(spool)} {clause} FORMAT {fmt}"
            with self._connection(database, settings or {}) as conn:
                result = conn.query(sql, "TabSeparated")
                written_rows, written_bytes = result.rows_written(), result.bytes_written()
        finally:
            with suppress(OSError):
                os.unlink(spool)
        return QueryStats(
            read_rows=written_rows,
            read_bytes=written_bytes,
            written_rows=written_rows,
            written_bytes=written_bytes,
            elapsed_ns=time.perf_counter_ns() - started,
        )

    def close(self, grace_s: float = 1.5) -> bool:
        """Refuse new work, wait up to grace_s for running statements, release the directory.
        Returns False (and keeps the engine open) if statements were still running."""
        with self._idle:
            self._closed = True
            deadline = time.monotonic() + grace_s
            while self._active and time.monotonic() < deadline:
                self._idle.wait(timeout=max(0.0, deadline - time.monotonic()))
            if self._active:
                return False
        self._anchor.close()
        return True
