"""Base of the warehouse readers: the shared client and one guarded way to query.

Warehouse work runs on a pool of its own (WAREHOUSE_CONCURRENCY threads) under a per-request
deadline (READ_DEADLINE_S): a hung or frozen warehouse costs a reader at most the deadline and a
503 with Retry-After, and can occupy only that pool, never what the other routes run on."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextvars import ContextVar, copy_context
from dataclasses import dataclass
from typing import Any, TypeVar

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError

from cost_api.errors import ServiceUnavailable, engine_code
from cost_api.telemetry import timed_query

# A read the API serves must answer fast or not at all: the engine aborts it after this long (or
# sooner, when the request's deadline is nearer) and the client gets 503 instead of waiting.
READ_TIMEOUT_S = 10
_TIMEOUT_EXCEEDED = 159
T = TypeVar("T")


@dataclass(frozen=True)
class ReadBudget:
    """The warehouse pool and the moment this request's reads must have answered by."""

    pool: ThreadPoolExecutor
    seconds: float
    deadline: float  # time.monotonic()

    def left(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise self.expired()
        return left

    def expired(self) -> ServiceUnavailable:
        return ServiceUnavailable(
            "warehouse", f"no answer within the read deadline of {self.seconds:g} s"
        )

    def wait(self, future: Future[T]) -> T:
        """The future's result, or a 503 once the deadline passes (the work is abandoned to the
        pool: it ends at the warehouse client's socket timeout at the latest)."""
        try:
            return future.result(timeout=self.left())
        except FutureTimeout:
            future.cancel()  # still queued: it never runs
            raise self.expired() from None

    async def run(self, work: Callable[[], T]) -> T:
        """`work` on the warehouse pool, awaited without blocking the event loop."""
        future = asyncio.get_running_loop().run_in_executor(self.pool, work)
        try:
            return await asyncio.wait_for(future, self.left())
        except TimeoutError:
            raise self.expired() from None


_budget: ContextVar[ReadBudget | None] = ContextVar("read_budget", default=None)


def _in_context(work: Callable[..., T]) -> Callable[..., T]:
    """`work` as a pool thread runs it: in the submitting request's context, so the records a
    query makes carry the request's route and customer (cost_pipelines.logs)."""
    context = copy_context()
    return lambda *args: context.run(work, *args)


def begin_reads(
    pool: ThreadPoolExecutor, seconds: float, arrived: float | None = None
) -> ReadBudget:
    """Start this request's read deadline, counted from its arrival (monotonic) when known
    (called by the warehouse dependency, on the request's own context, so its reads see it)."""
    budget = ReadBudget(pool, seconds, (arrived or time.monotonic()) + seconds)
    _budget.set(budget)
    return budget


class ClickHouseReader:
    """Reads through the API's shared client, which it borrows and never closes."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def rows(self, sql: str, parameters: Mapping[str, Any]) -> Sequence[Sequence[Any]]:
        """Run one SELECT with every value bound server-side ({name:Type}) on the warehouse pool;
        past the request's deadline (or READ_TIMEOUT_S in the engine) it becomes a 503."""
        budget = _budget.get()
        if budget is None:  # outside a request (a script, a test of the SQL): no deadline
            return self._query(sql, parameters, READ_TIMEOUT_S)
        return budget.wait(
            budget.pool.submit(_in_context(self._within), budget, sql, dict(parameters))
        )

    def soon(
        self, sql: str, parameters: Mapping[str, Any]
    ) -> Callable[[], Sequence[Sequence[Any]]]:
        """Start a SELECT now and return what waits for its rows, so a read whose queries do not
        depend on each other waits for the slowest, not for their sum. Outside a request it runs
        when its rows are asked for."""
        budget = _budget.get()
        if budget is None:
            return lambda: self._query(sql, parameters, READ_TIMEOUT_S)
        future = budget.pool.submit(_in_context(self._within), budget, sql, dict(parameters))
        return lambda: budget.wait(future)

    def _within(
        self, budget: ReadBudget, sql: str, parameters: Mapping[str, Any]
    ) -> Sequence[Sequence[Any]]:
        """The query as the pool starts it: its engine time limit is what is left of the
        request's deadline then, not when it was queued, and a read whose deadline passed while
        it waited for a thread is not sent at all (under overload the pool serves the reads that
        can still answer in time)."""
        limit = max(1, min(READ_TIMEOUT_S, math.ceil(budget.left())))
        return self._query(sql, parameters, limit)

    def _query(
        self, sql: str, parameters: Mapping[str, Any], limit_s: int
    ) -> Sequence[Sequence[Any]]:
        try:
            with timed_query(type(self).__name__):  # its latency by reader, in /metrics
                result = self.client.query(
                    sql,
                    parameters=dict(parameters),
                    settings={"max_execution_time": limit_s, "timeout_overflow_mode": "throw"},
                )
        except DatabaseError as exc:
            if engine_code(exc) == _TIMEOUT_EXCEEDED:
                raise ServiceUnavailable(
                    "warehouse", f"the query took longer than {limit_s} s"
                ) from exc
            raise
        return result.result_rows
