"""The `cursor` of a cost-lines page: opaque to clients, pinned to its list and first period."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import date

from cost_api.errors import InvalidParameter
from cost_api.params import EARLIEST, LATEST, CostQuery, Period

NOT_OURS = "not a cursor this API returned"


class InvalidCursor(InvalidParameter):
    """A cursor this API did not return, or returned for another list (422 naming `cursor`)."""

    def __init__(self, message: str, cursor: str) -> None:
        super().__init__("cursor", message, cursor)


def encode_cursor(query: CostQuery, period: Period, offset: int) -> str:
    """Opaque to clients: the next offset, pinned to the first page's period (so a page turned
    after midnight still continues the same list) and to the list's customer, provider and cost
    metric (so a cursor cannot continue a different list at an arbitrary offset)."""
    raw = json.dumps(
        {
            "c": query.customer_id,
            "p": query.provider,
            "m": query.metric.value,
            "s": period.start.isoformat(),
            "e": period.end.isoformat(),
            "o": offset,
        }
    )
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, query: CostQuery, max_days: int) -> tuple[Period, int]:
    """The period and offset a cursor of this query's list carries. InvalidCursor if it is not
    one of ours (or its period is longer than `max_days`), or was returned for another customer,
    provider or cost metric."""
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        start, end = date.fromisoformat(raw["s"]), date.fromisoformat(raw["e"])
        offset = raw["o"]
        scope = (raw["c"], raw["p"], raw["m"])
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise InvalidCursor(NOT_OURS, cursor) from exc
    # JSON's true is a Python int too: only a real integer is an offset.
    if type(offset) is not int or not 0 <= offset < 2**63:
        raise InvalidCursor(NOT_OURS, cursor)
    if not EARLIEST <= start < end <= LATEST or (end - start).days > max_days:
        raise InvalidCursor(NOT_OURS, cursor)
    if scope != (query.customer_id, query.provider, query.metric.value):
        raise InvalidCursor(
            "this cursor belongs to another list: use it with the customer, provider and "
            "cost_metric of the page that returned it",
            cursor,
        )
    return Period(start, end), offset
