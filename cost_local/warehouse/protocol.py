"""What one ClickHouse HTTP request means and how ClickHouse answers it: credentials, parameters
(settings, bindings, database), statement versus streamed INSERT, and the reply with its
X-ClickHouse-* headers. Transport-free: the server hands in headers, parameters and the body."""

from __future__ import annotations

import base64
import binascii
import hmac
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message

from cost_local.warehouse.engine import (
    HTTP_LEVEL_SETTINGS,
    Engine,
    EngineError,
    QueryStats,
    external_table,
)
from cost_local.warehouse.http_codec import (
    NEED_MORE,
    InsertSplit,
    RequestBody,
    compress,
    content_type,
    decode_body,
    parse_multipart,
    pick_response_encoding,
    split_insert,
    split_settings,
    statement_shape,
)

# URL parameters the ClickHouse HTTP handler consumes itself; everything else that is not a
# `param_` binding or an external table's description is a query setting.
RESERVED_PARAMS = frozenset(
    {
        "query",
        "database",
        "default_format",
        "user",
        "password",
        "quota_key",
        "query_id",
        "stacktrace",
        "role",
        "buffer_size",
        "wait_end_of_query",
        "session_id",
        "session_timeout",
        "session_check",
        "client_protocol_version",
        "close_session",
        "compress",
        "decompress",
    }
)
MAX_STATEMENT_HEAD = 1 << 20  # an INSERT's statement must start within the first MiB
TEXT = "text/plain; charset=UTF-8"


@dataclass(frozen=True)
class Credentials:
    """The one user this endpoint knows: ClickHouse's `default`, empty password unless set."""

    user: str = "default"
    password: str = ""

    def accepts(self, user: str, password: str) -> bool:
        """Constant-time comparison of both fields."""
        user_ok = hmac.compare_digest(user.encode(), self.user.encode())
        password_ok = hmac.compare_digest(password.encode(), self.password.encode())
        return user_ok and password_ok


@dataclass
class Reply:
    """An HTTP answer: status, body and headers (Content-Length is the transport's job)."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


OK_REPLY = Reply(200, b"Ok.\n", {"Content-Type": "text/html; charset=UTF-8"})


def _truthy(value: str) -> bool:
    return value.strip().lower() not in ("", "0", "false")


def request_credentials(headers: Message, params: dict[str, str]) -> tuple[str, str]:
    """User and password from X-ClickHouse-* headers, basic auth, or URL parameters."""
    if "X-ClickHouse-User" in headers or "X-ClickHouse-Key" in headers:
        return headers.get("X-ClickHouse-User", "default"), headers.get("X-ClickHouse-Key", "")
    authorization = headers.get("Authorization", "")
    if authorization[:6].lower() == "basic ":
        try:
            user, _, password = base64.b64decode(authorization[6:]).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return "", "\0"
        return user, password
    if authorization:
        return "", "\0"  # bearer tokens and other schemes are not supported here
    return params.get("user", "default"), params.get("password", "")


def authenticate(expected: Credentials, headers: Message, params: dict[str, str]) -> None:
    """Raise ClickHouse's AUTHENTICATION_FAILED unless the request carries the credentials."""
    user, password = request_credentials(headers, params)
    if not expected.accepts(user, password):
        raise EngineError(
            516,
            "AUTHENTICATION_FAILED",
            f"{user}: Authentication failed: password is incorrect, "
            "or there is no user with such name.",
        )


def classify(
    params: dict[str, str], files: dict[str, bytes]
) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """Split URL/form parameters into engine settings, HTTP-level settings and bindings."""
    external_params = {
        f"{name}_{part}" for name in files for part in ("structure", "types", "format")
    }
    settings: dict[str, str] = {}
    http_settings: dict[str, str] = {}
    bind: dict[str, str] = {}
    for key, value in params.items():
        if not key or key in RESERVED_PARAMS or key in external_params:
            continue
        if key.startswith("param_"):
            bind[key[len("param_") :]] = value
        elif key in HTTP_LEVEL_SETTINGS:
            http_settings[key] = value
        else:
            settings[key] = value
    return settings, http_settings, bind


@dataclass
class Exchange:
    """One request against the engine, from its parsed parts to its reply."""

    engine: Engine
    display_name: str
    method: str
    params: dict[str, str]
    headers: Message
    query_id: str

    def base_headers(self, timezone: str | None = None) -> dict[str, str]:
        """Headers every ClickHouse answer carries."""
        return {
            "X-ClickHouse-Server-Display-Name": self.display_name,
            "X-ClickHouse-Query-Id": self.query_id,
            "X-ClickHouse-Timezone": timezone or self.engine.timezone,
        }

    def error(self, exc: EngineError) -> Reply:
        """ClickHouse's error answer: status by code, the code in a header, the text as body."""
        headers = self.base_headers()
        headers["Content-Type"] = TEXT
        headers["X-ClickHouse-Exception-Code"] = str(exc.code)
        if exc.name == "READONLY" and self.method == "GET":
            exc.message += (
                ". For queries over HTTP, method GET implies readonly. "
                "You should use method POST for modifying queries"
            )
        return Reply(exc.http_status, exc.body(self.engine.version).encode(), headers)

    def run(self, body: RequestBody) -> Reply:
        """Run the request's statement (or INSERT with inline data) and build the answer."""
        params = self.params
        for flag in ("compress", "decompress"):
            if _truthy(params.get(flag, "")):
                raise EngineError(
                    48,
                    "NOT_IMPLEMENTED",
                    f"{flag}=1 (ClickHouse native block compression) is not supported by "
                    "cost-warehouse; use HTTP Content-Encoding and enable_http_compression",
                )
        chunks = decode_body(body.chunks(), self.headers.get("Content-Encoding", ""))
        query = params.get("query", "")
        files: dict[str, bytes] = {}
        ctype = self.headers.get("Content-Type", "")
        if self.method == "POST" and ctype.lower().startswith("multipart/form-data"):
            form = parse_multipart(ctype, b"".join(chunks))
            params = {**params, **form.fields}
            query, files, chunks = params.get("query", ""), form.files, iter(())
        elif self.method != "POST":
            body.drain()
            chunks = iter(())
            if not query:
                return OK_REPLY
        settings, http_settings, bind = classify(params, files)
        if self.method == "GET" and settings.get("readonly", "0") in ("", "0"):
            # As ClickHouse: GET never modifies data, not even when the URL asks readonly=0.
            settings["readonly"] = "2"
        database = params.get("database") or None

        head, split = self._statement_head(query, chunks)
        if isinstance(split, InsertSplit):
            data = itertools.chain([head[split.data_offset :]], chunks)
            parts = split_settings(split.statement)
            if parts is None:
                raise EngineError(
                    48,
                    "NOT_IMPLEMENTED",
                    "INSERT ... SELECT ... FROM input() with inline data is not supported by "
                    "cost-warehouse; insert the data into a table first, then INSERT ... SELECT",
                )
            stats = self.engine.insert(
                parts[0], split.fmt, data, clause=parts[1], database=database, settings=settings
            )
            return self._result(b"", None, stats, settings, http_settings)
        raw_sql = head + b"".join(chunks)
        if not raw_sql.strip():
            raise EngineError(62, "SYNTAX_ERROR", "Empty query")
        sql: str | bytes
        try:
            sql = raw_sql.decode("utf-8")
        except UnicodeDecodeError:
            sql = raw_sql  # binary bind values: the engine takes bytes as they are
        returns_rows, named_format = statement_shape(raw_sql.decode("latin-1"))
        fmt = params.get("default_format") or "TabSeparated"
        output, stats = self.engine.execute(
            sql,
            fmt=fmt,
            params=bind,
            database=database,
            settings=settings,
            external_tables=[external_table(n, data, params) for n, data in files.items()],
        )
        result_format = (named_format or fmt) if returns_rows or output else None
        return self._result(output, result_format, stats, settings, http_settings)

    @staticmethod
    def _statement_head(
        query: str, chunks: Iterator[bytes]
    ) -> tuple[bytes, InsertSplit | str | None]:
        """Read just enough of `query param + newline + body` to tell an INSERT with inline
        data (passed on piece by piece, never held in memory) from any other statement."""
        head = bytearray((query + "\n").encode() if query else b"")
        complete = False
        while (split := split_insert(bytes(head), complete)) == NEED_MORE:
            piece = next(chunks, None) if len(head) < MAX_STATEMENT_HEAD else None
            if piece is None:
                complete = True
            else:
                head += piece
        return bytes(head), split

    def _result(
        self,
        output: bytes,
        result_format: str | None,
        stats: QueryStats,
        settings: dict[str, str],
        http_settings: dict[str, str],
    ) -> Reply:
        headers = self.base_headers(settings.get("session_timezone"))
        if result_format:
            headers["X-ClickHouse-Format"] = result_format
            headers["Content-Type"] = content_type(result_format)
        else:
            headers["Content-Type"] = TEXT
        headers["X-ClickHouse-Summary"] = json.dumps(stats.summary(), separators=(",", ":"))
        # The engine's own default counts when the request does not say: clients read it from
        # system.settings and then only send Accept-Encoding.
        enabled = http_settings.get(
            "enable_http_compression", self.engine.http_defaults.get("enable_http_compression", "0")
        )
        encoding = pick_response_encoding(self.headers.get("Accept-Encoding", ""))
        if output and encoding and _truthy(enabled):
            level = int(http_settings.get("http_zlib_compression_level", "3") or 3)
            output = compress(output, encoding, level)
            headers["Content-Encoding"] = encoding
        return Reply(200, output, headers)
