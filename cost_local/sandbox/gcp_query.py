"""The part of GoogleSQL the sandbox's BigQuery understands: a SELECT of billing-export columns
from one export table, filtered by named parameters, optionally grouped (DATE(usage_start_time),
COUNT(*), Google's net-cost sum over NUMERIC casts); BigQuery's error shapes for the rest, and
the bytes a query processes as BigQuery counts them (the referenced columns of the partitions
left after _PARTITIONTIME pruning)."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from cost_local.sandbox.gcp_export import PARTITION_TIME, SCHEMA
from cost_local.sandbox.simulator import Response

_SELECT = re.compile(
    r"^\s*SELECT\s+(?P<select>.+?)\s+FROM\s+`(?P<table>[\w.-]+)`\s+WHERE\s+(?P<where>.+?)"
    r"(?:\s+GROUP\s+BY\s+(?P<group>[\w\s,]+?))?"
    r"(?:\s+ORDER\s+BY\s+usage_start_time)?\s*;?\s*$",
    re.I | re.S,
)
_DAY = re.compile(r"^DATE\(\s*usage_start_time\s*\)\s+AS\s+(?P<alias>\w+)$", re.I)
_COUNT = re.compile(r"^COUNT\(\s*\*\s*\)\s+AS\s+(?P<alias>\w+)$", re.I)
_NET = re.compile(
    r"^SUM\(\s*CAST\(\s*cost\s+AS\s+NUMERIC\s*\)\s*\)\s*\+\s*SUM\(\s*IFNULL\(\s*\(\s*"
    r"SELECT\s+SUM\(\s*CAST\(\s*(?P<c>\w+)\.amount\s+AS\s+NUMERIC\s*\)\s*\)\s+FROM\s+"
    r"UNNEST\(\s*credits\s*\)\s+(?:AS\s+)?(?P=c)\s*\)\s*,\s*0\s*\)\s*\)\s+AS\s+(?P<alias>\w+)$",
    re.I | re.S,
)
NUMERIC_PLACES = Decimal("1e-9")  # NUMERIC keeps 9 decimal digits
_ITEM = re.compile(r"^(?P<path>\w+(?:\.\w+)?)(?:\s+AS\s+(?P<alias>\w+))?$", re.I)
_PREDICATE = re.compile(
    r"^(?P<column>billing_account_id|usage_start_time|export_time|_PARTITIONTIME)\s*(?P<op>=|>=|<=|<|>)\s*"
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
    "export_time": "TIMESTAMP",
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
            429: "RESOURCE_EXHAUSTED",
            500: "INTERNAL",
            503: "UNAVAILABLE",
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


# One output column: its field, how to read it from a row (plain) or from a group (aggregate),
# and the columns (path in the row) BigQuery reads for it.
@dataclass(frozen=True)
class Output:
    field: dict[str, Any]
    path: tuple[str, ...] = ()
    aggregate: Callable[[list[Mapping[str, Any]]], Any] | None = None
    key: Callable[[Mapping[str, Any]], Any] | None = None
    reads: tuple[tuple[str, ...], ...] = ()


@dataclass(frozen=True)
class ParsedQuery:
    """A recognised query: the table, output columns, bound filters and grouping."""

    table: str
    outputs: tuple[Output, ...]
    filters: tuple[tuple[str, Callable[[Any, Any], bool], Any], ...]
    grouped: bool = False

    @property
    def columns(self) -> tuple[tuple[tuple[str, ...], dict[str, Any]], ...]:
        return tuple((o.path, o.field) for o in self.outputs)

    def matches(self, row: Mapping[str, Any]) -> bool:
        # _partitiontime is kept in each row (from its Pacific export date), see gcp_export.
        return all(compare(row[column], value) for column, compare, value in self.filters)

    def scanned(self, row: Mapping[str, Any]) -> bool:
        """Whether BigQuery reads the row at all: only _PARTITIONTIME filters prune."""
        return all(
            compare(row[column], value)
            for column, compare, value in self.filters
            if column == PARTITION_TIME
        )

    def reads(self) -> set[tuple[str, ...]]:
        paths = {path for o in self.outputs for path in (o.reads or (o.path,)) if path}
        return paths | {(column,) for column, _, _ in self.filters if column != PARTITION_TIME}

    def answer(self, rows: Sequence[Mapping[str, Any]]) -> list[list[Any]]:
        """The result rows, each a list of values in output order."""
        if not self.grouped:
            return [[_pick(r, o.path) for o in self.outputs] for r in rows]
        groups: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
        keys = [o for o in self.outputs if o.aggregate is None]
        for row in rows:
            groups.setdefault(tuple(_key_of(o, row) for o in keys), []).append(row)
        return [
            [o.aggregate(members) if o.aggregate else _key_of(o, members[0]) for o in self.outputs]
            for members in groups.values()
        ]


def _key_of(output: Output, row: Mapping[str, Any]) -> Any:
    return output.key(row) if output.key else _pick(row, output.path)


def _pick(row: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = row
    for part in path:
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def numeric(value: Decimal) -> Decimal:
    """CAST(<FLOAT64> AS NUMERIC): the double's exact value rounded half away from zero to 9
    decimal places (so a cost exported with up to 6 decimals comes back as written)."""
    return Decimal(float(value)).quantize(NUMERIC_PLACES, rounding=ROUND_HALF_UP)


def _net(rows: list[Mapping[str, Any]]) -> Decimal:
    cost = sum((numeric(r["cost"]) for r in rows if r["cost"] is not None), Decimal(0))
    credits = sum(
        (numeric(c["amount"]) for r in rows for c in r["credits"] if c["amount"] is not None),
        Decimal(0),
    )
    return cost + credits


def data_size(value: Any, field: Mapping[str, Any]) -> int:
    """Bytes of one value as BigQuery prices them: STRING 2 + UTF-8 bytes, INT64/FLOAT64/
    NUMERIC/TIMESTAMP/DATE 8 (NUMERIC 16), a STRUCT the sum of its fields, an ARRAY the sum of
    its elements, NULL 0."""
    if field.get("mode") == "REPEATED":
        single = {**field, "mode": "NULLABLE"}
        return sum(data_size(v, single) for v in value or [])
    if value is None:
        return 0
    if field["type"] == "RECORD":
        return sum(data_size(value.get(f["name"]), f) for f in field["fields"])
    if field["type"] == "STRING":
        return 2 + len(str(value).encode())
    return 16 if field["type"] == "NUMERIC" else 8


def bytes_read(row: Mapping[str, Any], paths: set[tuple[str, ...]]) -> int:
    total = 0
    for path in paths:
        field = SCHEMA[path[0]]
        if len(path) == 1:
            total += data_size(row.get(path[0]), field)
        elif field.get("mode") == "REPEATED":  # credits.amount: that field of every element
            sub = next(f for f in field["fields"] if f["name"] == path[1])
            total += sum(data_size(e.get(path[1]), sub) for e in row.get(path[0]) or [])
        else:
            sub = next(f for f in field["fields"] if f["name"] == path[1])
            total += data_size((row.get(path[0]) or {}).get(path[1]), sub)
    return total


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
    outputs = _outputs(match["select"])
    grouped = match["group"] is not None or any(o.aggregate for o in outputs)
    if grouped:
        names = [g.strip() for g in (match["group"] or "").split(",") if g.strip()]
        keys = [o.field["name"] for o in outputs if o.aggregate is None]
        if sorted(names) != sorted(keys):
            missing = sorted(set(keys) - set(names)) or sorted(set(names) - set(keys))
            raise invalid_query(
                "SELECT list expression references column "
                f"{', '.join(missing)} which is neither grouped nor aggregated"
            )
    return ParsedQuery(table, outputs, _filters(match["where"], params), grouped)


def _split_items(select: str) -> list[str]:
    """The select list's items, split at the commas outside parentheses."""
    items: list[str] = []
    current: list[str] = []
    depth = 0
    for char in select:
        depth += (char == "(") - (char == ")")
        if char == "," and depth == 0:
            items.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    items.append("".join(current).strip())
    return [" ".join(item.split()) for item in items]


def _outputs(select: str) -> tuple[Output, ...]:
    out = []
    for item in _split_items(select):
        if found := _DAY.match(item):
            out.append(
                Output(
                    {"name": found["alias"], "type": "DATE", "mode": "NULLABLE"},
                    key=lambda r: r["usage_start_time"].astimezone(UTC).date(),
                    reads=(("usage_start_time",),),
                )
            )
            continue
        if found := _COUNT.match(item):
            out.append(
                Output(
                    {"name": found["alias"], "type": "INTEGER", "mode": "NULLABLE"},
                    aggregate=len,
                )
            )
            continue
        if found := _NET.match(item):
            out.append(
                Output(
                    {"name": found["alias"], "type": "NUMERIC", "mode": "NULLABLE"},
                    aggregate=_net,
                    reads=(("cost",), ("credits", "amount")),
                )
            )
            continue
        found = _ITEM.match(item)
        top, _, sub = (found["path"] if found else "").partition(".")
        field = SCHEMA.get(top)
        if found and field and sub:
            field = next((f for f in field.get("fields", []) if f["name"] == sub), None)
        if not found or field is None:
            raise invalid_query(f"Unrecognized name: {item}")
        name = found["alias"] or (sub or top)
        out.append(Output({**field, "name": name}, (top, sub) if sub else (top,)))
    names = [o.field["name"] for o in out]
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
