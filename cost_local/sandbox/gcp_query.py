"""The part of GoogleSQL the sandbox's BigQuery understands: a SELECT of billing-export columns
from one export table, filtered by named parameters; BigQuery's error shapes for the rest."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cost_local.sandbox.gcp_export import SCHEMA
from cost_local.sandbox.simulator import Response

_SELECT = re.compile(
    r"^\s*SELECT\s+(?P<select>.+?)\s+FROM\s+`(?P<table>[\w.-]+)`\s+WHERE\s+(?P<where>.+?)"
    r"(?:\s+ORDER\s+BY\s+usage_start_time)?\s*;?\s*$",
    re.I | re.S,
)
_ITEM = re.compile(r"^(?P<path>\w+(?:\.\w+)?)(?:\s+AS\s+(?P<alias>\w+))?$", re.I)
_PREDICATE = re.compile(
    r"^(?P<column>billing_account_id|usage_start_time|_PARTITIONTIME)\s*(?P<op>=|>=|<=|<|>)\s*"
    r"(?:@(?P<param>\w+)|TIMESTAMP_SUB\(\s*@(?P<sub_param>\w+)\s*,\s*INTERVAL\s+"
    r"(?P<amount>\d+)\s+(?P<unit>DAY|HOUR|MINUTE)\s*\))$",
    re.I,
)
_UNITS = {"day": "days", "hour": "hours", "minute": "minutes"}
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    ">=": operator.ge,
    "<=": operator.le,
    "<": operator.lt,
    ">": operator.gt,
}
_COLUMN_TYPE = {
    "billing_account_id": "STRING",
    "usage_start_time": "TIMESTAMP",
    "_partitiontime": "TIMESTAMP",
}


class BigQueryError(Exception):
    """An error answered in the shape of the BigQuery REST API."""

    def __init__(
        self,
        status: int,
        reason: str,
        message: str,
        *,
        detail: str | None = None,
        location: tuple[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        item: dict[str, str] = {"message": detail or message, "domain": "global", "reason": reason}
        if location:
            item["location"], item["locationType"] = location
        grpc = {
            400: "INVALID_ARGUMENT",
            401: "UNAUTHENTICATED",
            403: "PERMISSION_DENIED",
            404: "NOT_FOUND",
        }
        body = {
            "error": {
                "code": status,
                "message": message,
                "errors": [item],
                "status": grpc.get(status, "UNKNOWN"),
            }
        }
        self.response = Response(status, body, headers or {})


@dataclass(frozen=True)
class ParsedQuery:
    """A recognised query: the table, output columns and bound filters."""

    table: str
    columns: tuple[tuple[tuple[str, ...], dict[str, Any]], ...]  # (path in row, output field)
    filters: tuple[tuple[str, Callable[[Any, Any], bool], Any], ...]

    def matches(self, row: Mapping[str, Any]) -> bool:
        # _partitiontime is kept in each row (from its Pacific export date), see gcp_export.
        return all(compare(row[column], value) for column, compare, value in self.filters)


def invalid_query(message: str) -> BigQueryError:
    return BigQueryError(400, "invalidQuery", message, location=("q", "parameter"))


def parse_query(body: Mapping[str, Any], exports: Mapping[str, Any]) -> ParsedQuery:
    """Recognise the query, or raise BigQuery's error for what is wrong with it."""
    if body.get("useLegacySql", True) is not False:
        raise invalid_query("The sandbox answers GoogleSQL only: set useLegacySql to false.")
    match = _SELECT.match(str(body.get("query", "")))
    if not match:
        raise invalid_query(
            "Syntax error: the sandbox's BigQuery recognises `SELECT <export columns> FROM "
            "`<billing export table>` WHERE <column> <op> @<parameter> AND ...` only."
        )
    table = match["table"]
    if table not in exports:
        where = table.replace(".", ":", 1)
        raise BigQueryError(
            404, "notFound", f"Not found: Table {where} was not found in location US"
        )
    params = _parameters(body)
    return ParsedQuery(table, _columns(match["select"]), _filters(match["where"], params))


def _columns(select: str) -> tuple[tuple[tuple[str, ...], dict[str, Any]], ...]:
    out = []
    for item in (part.strip() for part in select.split(",")):
        found = _ITEM.match(item)
        top, _, sub = (found["path"] if found else "").partition(".")
        field = SCHEMA.get(top)
        if found and field and sub:
            field = next((f for f in field.get("fields", []) if f["name"] == sub), None)
        if not found or field is None:
            raise invalid_query(f"Unrecognized name: {item}")
        name = found["alias"] or (sub or top)
        out.append(((top, sub) if sub else (top,), {**field, "name": name}))
    names = [f["name"] for _, f in out]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise invalid_query(
            "Duplicate column names in the result are not supported. Found duplicate(s): "
            + ", ".join(duplicates)
        )
    return tuple(out)


def _parameters(body: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    if body.get("queryParameters") and body.get("parameterMode") != "NAMED":
        raise invalid_query("Query parameters must be NAMED for this query.")
    out = {}
    for param in body.get("queryParameters") or []:
        try:
            kind = param["parameterType"]["type"]
            out[param["name"]] = (kind, param["parameterValue"]["value"])
        except (KeyError, TypeError):
            raise invalid_query(f"Invalid query parameter: {param!r}") from None
    return out


def _filters(where: str, params: Mapping[str, tuple[str, str]]) -> tuple:
    out = []
    for predicate in re.split(r"\s+AND\s+", where.strip(), flags=re.I):
        found = _PREDICATE.match(predicate.strip())
        if not found:
            raise invalid_query(f"The sandbox's BigQuery cannot evaluate: {predicate.strip()}")
        column, name = found["column"].lower(), found["param"] or found["sub_param"]
        if name not in params:
            raise invalid_query(f"Query parameter '{name}' not found")
        kind, raw = params[name]
        expected = _COLUMN_TYPE[column]
        if found["sub_param"] and kind != "TIMESTAMP":
            raise invalid_query(
                f"No matching signature for function TIMESTAMP_SUB for argument types: {kind}, "
                "INTERVAL. Supported signature: TIMESTAMP_SUB(TIMESTAMP, INTERVAL INT64 "
                "DATE_TIME_PART)"
            )
        if kind != expected:
            raise invalid_query(
                f"No matching signature for operator {found['op']} for argument types: "
                f"{expected}, {kind}. Supported signature: ANY {found['op']} ANY"
            )
        value: Any = raw if kind == "STRING" else _timestamp(raw)
        if found["sub_param"]:
            value -= timedelta(**{_UNITS[found["unit"].lower()]: int(found["amount"])})
        out.append((column, _OPS[found["op"]], value))
    return tuple(out)


def _timestamp(raw: str) -> datetime:
    text = raw.strip().removesuffix(" UTC").replace("Z", "+00:00")
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise invalid_query(f"Invalid TIMESTAMP literal: '{raw}'") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)
