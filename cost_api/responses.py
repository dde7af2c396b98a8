"""The error answers the routers document in OpenAPI, each defined once and composed per router."""

from __future__ import annotations

from typing import Any

from cost_api.schemas import ErrorMessage

Responses = dict[int | str, dict[str, Any]]

AUTH: Responses = {
    401: {"model": ErrorMessage, "description": "No or unknown API key"},
    403: {"model": ErrorMessage, "description": "The key may not use this customer"},
}
WAREHOUSE: Responses = {
    500: {"model": ErrorMessage, "description": "The warehouse rejected the query (logged)"},
    503: {"model": ErrorMessage, "description": "The warehouse is down, too slow or too busy"},
}
DAGSTER: Responses = {
    502: {"model": ErrorMessage, "description": "Dagster answered with an error"},
    503: {"model": ErrorMessage, "description": "Dagster is down or too slow"},
}


def compose(*tables: Responses) -> Responses:
    """One router's responses: the tables merged, later ones winning on a shared status."""
    merged: Responses = {}
    for table in tables:
        merged.update(table)
    return merged


COST_READS = compose(AUTH, WAREHOUSE)
COLLECTION = compose(AUTH, DAGSTER)
