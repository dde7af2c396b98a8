"""Bytes on the wire of the ClickHouse HTTP interface: request bodies (chunked, compressed,
multipart), compressed responses, and the little SQL reading the HTTP layer needs (where inline
INSERT data starts, which output format a statement asks for)."""

from __future__ import annotations

import email.parser
import email.policy
import gzip
import io
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final, Literal

import lz4.frame
import zstandard

from cost_local.warehouse.engine import EngineError

READ_SIZE = 1 << 20


class RequestBody:
    """The request body as a stream of raw pieces (Content-Length or chunked transfer coding).
    The read position lives here, not in a generator, so an abandoned stream can be drained."""

    def __init__(
        self, rfile: io.BufferedIOBase, transfer_encoding: str, content_length: str | None
    ) -> None:
        self._rfile = rfile
        self._chunked = "chunked" in transfer_encoding.lower()
        # bytes left in the body (Content-Length) or in the current chunk; -1: read a size line
        self._left = -1 if self._chunked else int(content_length or 0)
        self.finished = not self._chunked and self._left == 0

    def read_piece(self) -> bytes:
        """The next piece of at most READ_SIZE bytes; b"" once the body is complete."""
        if self.finished:
            return b""
        if self._chunked and self._left <= 0:
            if self._left == 0:
                self._rfile.readline(3)  # the CRLF closing the previous chunk
            self._left = self._chunk_size()
            if self._left == 0:
                while self._rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass  # trailer fields carry nothing we use
                self.finished = True
                return b""
        data = self._rfile.read(min(self._left, READ_SIZE))
        if not data:
            raise ConnectionError("client closed the connection in the middle of the body")
        self._left -= len(data)
        if not self._chunked and self._left == 0:
            self.finished = True
        return data

    def _chunk_size(self) -> int:
        line = self._rfile.readline(65537)
        if not line:
            raise ConnectionError("client closed the connection in the middle of the body")
        try:
            return int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise EngineError(
                1000, "POCO_EXCEPTION", "Invalid chunk size in chunked transfer coding"
            ) from None

    def chunks(self) -> Iterator[bytes]:
        """Yield the rest of the body piece by piece."""
        while piece := self.read_piece():
            yield piece

    def drain(self) -> None:
        """Read and drop what is left, so the connection stays usable for the next request."""
        while self.read_piece():
            pass


# Content-Encoding names ClickHouse accepts for request bodies, with a frame decoder factory.
# Senders may concatenate frames (clickhouse-connect writes one lz4/zstd frame per block).
_DECODERS: Final[dict[str, Callable[[], Any]]] = {
    "gzip": lambda: zlib.decompressobj(wbits=31),
    "deflate": lambda: zlib.decompressobj(wbits=15),
    "lz4": lz4.frame.LZ4FrameDecompressor,
    "zstd": lambda: zstandard.ZstdDecompressor().decompressobj(),
}


def decode_body(chunks: Iterator[bytes], encoding: str) -> Iterator[bytes]:
    """Undo Content-Encoding on a chunk stream, frame after frame."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        yield from chunks
        return
    factory = _DECODERS.get(encoding)
    if factory is None:
        raise EngineError(
            48,
            "NOT_IMPLEMENTED",
            f"Unsupported HTTP Content-Encoding '{encoding}' (br not installed)",
        )
    decoder, in_frame = factory(), False
    try:
        for chunk in chunks:
            data = chunk
            while data:
                in_frame = True
                out = decoder.decompress(data)
                if out:
                    yield out
                data = b""
                if decoder.eof:
                    data = decoder.unused_data
                    decoder, in_frame = factory(), False
    except (zlib.error, RuntimeError, zstandard.ZstdError) as exc:
        raise EngineError(
            271, "CANNOT_DECOMPRESS", f"Cannot decompress {encoding} body: {exc}"
        ) from exc
    if in_frame:  # a cut-off body must not pass for a shorter one
        raise EngineError(271, "CANNOT_DECOMPRESS", f"The {encoding} body ends inside a frame")


# The preference order of ClickHouse's chooseHTTPCompressionMethod (br is not installed here).
_RESPONSE_ENCODINGS: Final = ("zstd", "lz4", "gzip", "deflate")


def pick_response_encoding(accept_encoding: str) -> str | None:
    """The response Content-Encoding for an Accept-Encoding header, or None."""
    offered = {part.split(";", 1)[0].strip().lower() for part in accept_encoding.split(",")}
    return next((enc for enc in _RESPONSE_ENCODINGS if enc in offered), None)


def compress(data: bytes, encoding: str, level: int = 3) -> bytes:
    """Compress a whole response body as one frame (what clickhouse-connect decodes)."""
    if encoding == "zstd":
        return zstandard.ZstdCompressor(level=level).compress(data)
    if encoding == "lz4":
        return bytes(lz4.frame.compress(data))
    if encoding == "gzip":
        return gzip.compress(data, compresslevel=min(max(level, 1), 9))
    return zlib.compress(data, min(max(level, 1), 9))


@dataclass
class FormData:
    """A multipart/form-data body: text fields and named files (external tables)."""

    fields: dict[str, str]
    files: dict[str, bytes]


def parse_multipart(content_type: str, body: bytes) -> FormData:
    """Split a multipart/form-data body into fields and files."""
    head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1")
    message: Any = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    form = FormData({}, {})
    if not message.is_multipart():
        raise EngineError(1000, "POCO_EXCEPTION", "Malformed multipart/form-data body")
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True) or b""
        if not name:
            continue
        if part.get_filename() is not None:
            form.files[str(name)] = payload
        else:
            form.fields[str(name)] = payload.decode("utf-8")
    return form


_CONTENT_TYPES: Final = (
    ("TabSeparated", "text/tab-separated-values; charset=UTF-8"),
    ("TSV", "text/tab-separated-values; charset=UTF-8"),
    ("CSV", "text/csv; charset=UTF-8; header=absent"),
    ("JSON", "application/json; charset=UTF-8"),
    ("XML", "application/xml; charset=UTF-8"),
    ("Pretty", "text/plain; charset=UTF-8"),
    ("Markdown", "text/markdown; charset=UTF-8"),
    ("Values", "text/plain; charset=UTF-8"),
    ("Vertical", "text/plain; charset=UTF-8"),
)


def content_type(fmt: str) -> str:
    """The Content-Type ClickHouse sends for an output format."""
    lowered = fmt.lower()
    for prefix, value in _CONTENT_TYPES:
        if lowered.startswith(prefix.lower()):
            return value
    return "application/octet-stream"


# --- SQL reading --------------------------------------------------------------------------

_WORD_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
_QUOTED_RE: Final = {
    q: re.compile(q + r"(?:[^" + q + r"\\]|\\.|" + q + q + r")*" + q, re.DOTALL) for q in "'\"`"
}
NEED_MORE: Final = "need more"

Token = tuple[str, int, int]  # (word, start, end) at parenthesis depth 0


def _top_level_words(text: str) -> Iterator[Token | Literal["need more"]]:
    """Words outside literals, quoted names, comments and parentheses, with their spans.
    Yields NEED_MORE (and stops) if the text ends inside a literal or comment."""
    i, depth, n = 0, 0, len(text)
    while i < n:
        ch = text[i]
        if ch in _QUOTED_RE:
            quoted = _QUOTED_RE[ch].match(text, i)
            if quoted is None:
                yield NEED_MORE
                return
            i = quoted.end()
        elif text.startswith("--", i) or (ch == "#" and text[i + 1 : i + 2] in (" ", "!")):
            j = text.find("\n", i)
            if j < 0:
                yield NEED_MORE
                return
            i = j + 1
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            if j < 0:
                yield NEED_MORE
                return
            i = j + 2
        elif ch in "([":
            depth += 1
            i += 1
        elif ch in ")]":
            depth = max(0, depth - 1)
            i += 1
        elif ch.isalpha() or ch == "_":
            match = _WORD_RE.match(text, i)
            end = match.end() if match else i + 1
            if depth == 0:
                yield (text[i:end], i, end)
            i = end
        else:
            i += 1


def _is_function_call(text: str, end: int) -> bool:
    return text[end:].lstrip(" \t\r\n").startswith("(")


@dataclass(frozen=True)
class InsertSplit:
    """An INSERT with inline data: the statement, its FORMAT, and where the data starts."""

    statement: str
    fmt: str
    data_offset: int


def split_insert(head: bytes, complete: bool) -> InsertSplit | Literal["need more"] | None:
    """Find where inline INSERT data starts in the first bytes of a request.

    None: not an INSERT with a FORMAT clause (run it as ordinary SQL); NEED_MORE: read on.
    Data starts after FORMAT <name>, spaces, and at most one newline, as ClickHouse parses it.
    """
    text = head.decode("latin-1")  # byte offsets stay char offsets; the statement is utf-8
    words = _top_level_words(text)
    first = next(words, None)
    if first is None or first == NEED_MORE:
        return None if complete else NEED_MORE
    if first[0].upper() != "INSERT":
        return None
    previous: Token = first
    for token in words:
        if token == NEED_MORE:
            return None if complete else NEED_MORE
        word, _, end = token
        keyword = previous[0].upper()
        if keyword == "FORMAT" and not _is_function_call(text, previous[2]):
            pos = end
            while pos < len(text) and text[pos] in " \t\f":
                pos += 1
            if pos == len(text) and not complete:
                return NEED_MORE  # the format name or the whitespace after it may go on
            if text.startswith("\r", pos):
                pos += 1
            if text.startswith("\n", pos):
                pos += 1
            statement = head[: previous[1]].decode("utf-8").strip()
            return InsertSplit(statement=statement, fmt=word, data_offset=pos)
        if word.upper() == "VALUES" and keyword not in ("FROM", "JOIN"):
            return None  # inline VALUES tuples are SQL text: the engine parses them whole
        previous = token
    return None if complete else NEED_MORE


def split_settings(statement: str) -> tuple[str, str] | None:
    """`INSERT INTO t (a) SETTINGS x = 1` -> ("INSERT INTO t (a)", "SETTINGS x = 1"), so a
    FROM INFILE clause can go between; None for an INSERT that SELECTs (from input())."""
    for token in _top_level_words(statement):
        if token == NEED_MORE:
            return None
        word = token[0].upper()
        if word in ("SELECT", "WITH"):
            return None
        if word == "SETTINGS":
            return statement[: token[1]].rstrip(), statement[token[1] :]
    return statement, ""


_RESULT_STATEMENTS: Final = frozenset(
    {"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS", "EXPLAIN", "CHECK", "FROM", "KILL"}
)


def statement_shape(sql: str) -> tuple[bool, str | None]:
    """(returns a result set?, the FORMAT the SQL itself names or None)."""
    words = _top_level_words(sql)
    first = next(words, None)
    if first is None or first == NEED_MORE:
        return sql.lstrip().startswith("("), None
    if first[0].upper() == "INSERT":
        return False, None  # no need to scan inline data
    fmt: str | None = None
    previous: Token = first
    for token in words:
        if token == NEED_MORE:
            break
        if previous[0].upper() == "FORMAT" and not _is_function_call(sql, previous[2]):
            fmt = token[0]
        previous = token
    first_word = first[0].upper()
    return first_word in _RESULT_STATEMENTS or sql.lstrip().startswith("("), fmt
