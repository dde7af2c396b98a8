"""Point-in-time reads (`as_of`): the same fixed SQL texts, read as of an instant.

A read without `as_of` runs its text unchanged (the fast path: `costs_current`, the newest
pointers). With `as_of`, it runs a second fixed text derived once from the first, in which
- `costs_current(customer_id = ...)` is `costs_as_of(customer_id = ..., as_of = ...)`: the line
  items of the loads whose pointers were published by the instant (migration 4), and
  `cost_daily_current` is `cost_daily_as_of`, their daily sums (migration 7), and
  `costs_current_resources` is `costs_as_of_resources` (migration 8);
- `cost_loads` is its pointers published by the instant (collection times, day states);
- `exchange_rates` is the rates loaded by the instant;
- `cost_restatements` is the ledger rows recorded by the instant.
Every value, the instant too, is still bound; the request only chooses between the two texts.

An instant before the history horizon (the earliest instant whose loads are all still kept,
moved forward by the retention job) is refused with a 422 naming `as_of` and that instant."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import cache
from typing import Any

from cost_api.errors import InvalidParameter
from cost_pipelines.warehouse.retention import HORIZON_SQL

AS_OF = "{as_of:DateTime64(6, 'UTC')}"
_CURRENT = "costs_current(customer_id = {customer_id:String})"
_AS_OF_VIEW = f"costs_as_of(customer_id = {{customer_id:String}}, as_of = {AS_OF})"
_KEYS = "keys = {keys:Array(UInt64)}"
_RESOURCES = f"costs_current_resources(customer_id = {{customer_id:String}}, {_KEYS})"
_RESOURCES_AS_OF = (
    f"costs_as_of_resources(customer_id = {{customer_id:String}}, as_of = {AS_OF}, {_KEYS})"
)
_DAILY = "cost_daily_current(customer_id = {customer_id:String})"
_DAILY_AS_OF = f"cost_daily_as_of(customer_id = {{customer_id:String}}, as_of = {AS_OF})"
_TABLES = {
    "cost_loads": "(SELECT * FROM cost_loads WHERE published_at <= "  # noqa: S608 (constant)
    f"{AS_OF}) AS cost_loads",
    "exchange_rates": "(SELECT * FROM exchange_rates WHERE loaded_at <= "  # noqa: S608 (constant)
    f"{AS_OF}) AS exchange_rates",
    "cost_restatements": "(SELECT * FROM cost_restatements WHERE recorded_at <= "  # noqa: S608
    f"{AS_OF}) AS cost_restatements",
}
_FROM_TABLE = re.compile(r"\bFROM\s+(cost_loads|exchange_rates|cost_restatements)\b(?!_)")


@cache
def text_as_of(sql: str) -> str:
    """The point-in-time text of a read's fixed text (computed once per text)."""
    text = sql.replace(_CURRENT, _AS_OF_VIEW).replace(_DAILY, _DAILY_AS_OF)
    text = text.replace(_RESOURCES, _RESOURCES_AS_OF)
    text = _FROM_TABLE.sub(lambda m: "FROM " + _TABLES[m[1]], text)
    if (
        "costs_current" in text
        or "cost_daily_current" in text
        or re.search(r"\bFROM\s+(costs|cost_daily)\b(?!_)", text)
    ):
        raise ValueError("a read's text names the current data in a way as_of does not know")
    return text


def bind_as_of(values: dict[str, Any], instant: datetime) -> dict[str, Any]:
    # Bound as naive UTC text: the placeholder's type carries the zone.
    return {**values, "as_of": instant.astimezone(UTC).replace(tzinfo=None)}


def require_history(rows: Any, instant: datetime) -> None:
    """Refuse an instant before the horizon (the result of HORIZON_SQL), naming both."""
    earliest = rows[0][0] if rows else None
    if earliest is None:
        return
    earliest = earliest if earliest.tzinfo else earliest.replace(tzinfo=UTC)
    if instant < earliest:
        shown = earliest.astimezone(UTC).isoformat().replace("+00:00", "Z")
        raise InvalidParameter(
            "as_of",
            f"as_of is before the earliest instant kept, {shown}: superseded loads are kept "
            "for COST_RETENTION_DAYS, and history begins when it was first kept",
            instant.isoformat().replace("+00:00", "Z"),
        )


__all__ = ["AS_OF", "HORIZON_SQL", "bind_as_of", "require_history", "text_as_of"]
