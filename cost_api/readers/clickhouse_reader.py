"""Base of the warehouse readers: the shared client and one guarded way to query."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError

from cost_api.errors import ServiceUnavailable, engine_code

# A read the API serves must answer fast or not at all: the engine aborts it after this long and
# the client gets 503 instead of a hanging request. (The socket timeout for a warehouse that does
# not answer at all is CLICKHOUSE_QUERY_TIMEOUT_S.)
READ_TIMEOUT_S = 10
_TIMEOUT_EXCEEDED = 159


class ClickHouseReader:
    """Reads through the API's shared client, which it borrows and never closes."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def rows(self, sql: str, parameters: Mapping[str, Any]) -> Sequence[Sequence[Any]]:
        """Run one SELECT with every value bound server-side ({name:Type}); a read that runs
        past READ_TIMEOUT_S becomes a 503 with a short reason."""
        try:
            result = self.client.query(
                sql,
                parameters=dict(parameters),
                settings={"max_execution_time": READ_TIMEOUT_S, "timeout_overflow_mode": "throw"},
            )
        except DatabaseError as exc:
            if engine_code(exc) == _TIMEOUT_EXCEEDED:
                raise ServiceUnavailable(
                    "warehouse", f"the query took longer than {READ_TIMEOUT_S} s"
                ) from exc
            raise
        return result.result_rows
