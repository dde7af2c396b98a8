"""Base of the warehouse readers: a context-managed client and one guarded way to query."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError

from cost_api.errors import ServiceUnavailable, engine_code
from cost_pipelines.warehouse.connection import WarehouseSettings, create_client

# A read the API serves must answer fast or not at all: the engine aborts it after this long and
# the client gets 503 instead of a hanging request. (The socket timeout for a warehouse that does
# not answer at all is CLICKHOUSE_QUERY_TIMEOUT_S.)
READ_TIMEOUT_S = 10
_TIMEOUT_EXCEEDED = 159


class ClickHouseReader:
    """Reads through a borrowed client (the API's shared one) or one it creates and closes."""

    def __init__(self, client: Client | None = None, settings: WarehouseSettings | None = None):
        self._owned = client is None
        self.client = client if client is not None else create_client(settings)

    def __enter__(self) -> ClickHouseReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the client if this reader created it; a borrowed client stays open."""
        if self._owned:
            self.client.close()

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
