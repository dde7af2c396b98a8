"""The `cursor` of a cost-lines page: opaque to clients, pinned to its list and first period,
naming the line the next page starts after (keyset paging)."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from cost_api.errors import InvalidParameter
from cost_api.params import EARLIEST, LATEST, CostQuery, Period

NOT_OURS = "not a cursor this API returned"


class InvalidCursor(InvalidParameter):
    """A cursor this API did not return, or returned for another list (422 naming `cursor`)."""

    def __init__(self, message: str, cursor: str) -> None:
        super().__init__("cursor", message, cursor)


@dataclass(frozen=True)
class PageKey:
    """Where the next page starts: the previous page's last line (its columns as CostLine lists
    them) and how many lines equal to it the pages so far returned."""

    line: tuple[Any, ...]
    seen: int


# The kinds of a line's columns, in CostLine's order: its day, six texts, the billed cost (always
# there), three costs a source may not supply, the currency.
_LINE = ("day", *["text"] * 6, "money", *["optional money"] * 3, "text")


def _encode_value(value: Any) -> Any:
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _decode_value(kind: str, value: Any) -> Any:
    """One column of a cursor's line, or ValueError when it is not what we wrote."""
    if kind == "day" and isinstance(value, str):
        return date.fromisoformat(value)
    if kind == "text" and isinstance(value, str):
        return value
    if kind == "optional money" and value is None:
        return None
    if kind in ("money", "optional money") and isinstance(value, str):
        amount = Decimal(value)
        if amount.is_finite():
            return amount
    raise ValueError(value)


def encode_cursor(query: CostQuery, period: Period, after: PageKey) -> str:
    """Opaque to clients: the line the next page starts after, pinned to the first page's period
    (so a page turned after midnight still continues the same list) and to the list's customer,
    provider and cost metric (so a cursor cannot continue a different list)."""
    raw = json.dumps(
        {
            "c": query.customer_id,
            "p": query.provider,
            "m": query.metric.value,
            "s": period.start.isoformat(),
            "e": period.end.isoformat(),
            "k": [_encode_value(value) for value in after.line],
            "n": after.seen,
        }
    )
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, query: CostQuery, max_days: int) -> tuple[Period, PageKey]:
    """The period and the page key a cursor of this query's list carries. InvalidCursor if it is
    not one of ours (or its period is longer than `max_days`), or was returned for another
    customer, provider or cost metric."""
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        start, end = date.fromisoformat(raw["s"]), date.fromisoformat(raw["e"])
        seen, line = raw["n"], raw["k"]
        scope = (raw["c"], raw["p"], raw["m"])
        if not isinstance(line, list) or len(line) != len(_LINE):
            raise ValueError("line")
        key = tuple(_decode_value(kind, value) for kind, value in zip(_LINE, line, strict=True))
    except (ValueError, KeyError, TypeError, ArithmeticError, binascii.Error) as exc:
        raise InvalidCursor(NOT_OURS, cursor) from exc
    # JSON's true is a Python int too: only a real integer is a count.
    if type(seen) is not int or not 0 <= seen < 2**63:
        raise InvalidCursor(NOT_OURS, cursor)
    if not EARLIEST <= start < end <= LATEST or (end - start).days > max_days:
        raise InvalidCursor(NOT_OURS, cursor)
    if not start <= key[0] < end:
        raise InvalidCursor(NOT_OURS, cursor)
    if scope != (query.customer_id, query.provider, query.metric.value):
        raise InvalidCursor(
            "this cursor belongs to another list: use it with the customer, provider and "
            "cost_metric of the page that returned it",
            cursor,
        )
    return Period(start, end), PageKey(key, seen)
