"""The newest asset check results per (customer, provider) for cost reads, from Dagster but never
in a read's way: answers are kept for `ttl_s`, a read waits at most `timeout_s` for a missing
one (the fetch goes on and fills the cache for the next read), and a Dagster that is down or slow
gives `None` ("unknown") for `retry_s` without being asked again by every read."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from cost_api.control.client import DagsterClient
from cost_api.control.runs import CheckResult
from cost_api.errors import ServiceUnavailable
from cost_pipelines.runs import WINDOW_CHECKS

log = logging.getLogger(__name__)

Pair = tuple[str, str]
Checks = dict[str, list[CheckResult]]


class CheckCache:
    """One per API process (the lifespan builds it beside the Dagster client)."""

    def __init__(
        self,
        dagster: DagsterClient,
        *,
        ttl_s: float = 60.0,
        timeout_s: float = 0.5,
        retry_s: float = 15.0,
    ) -> None:
        self._dagster = dagster
        self._ttl = ttl_s
        self._timeout = timeout_s
        self._retry = retry_s
        self._known: dict[Pair, tuple[float, list[CheckResult] | None]] = {}
        self._fetching: dict[Pair, asyncio.Task[None]] = {}

    def _fresh(self, pair: Pair, now: float) -> bool:
        entry = self._known.get(pair)
        return entry is not None and entry[0] > now

    async def _fetch(self, pairs: list[Pair]) -> None:
        try:
            found = await self._dagster.latest_checks(pairs, WINDOW_CHECKS)
        except (ServiceUnavailable, KeyError, TypeError, ValueError) as exc:
            log.info("asset checks unknown for %d pairs: %s", len(pairs), exc)
            until = time.monotonic() + self._retry
            for pair in pairs:
                self._known[pair] = (until, None)
        else:
            until = time.monotonic() + self._ttl
            for pair in pairs:
                self._known[pair] = (until, found.get(pair, []))
        finally:
            for pair in pairs:
                self._fetching.pop(pair, None)

    async def checks(self, customer_id: str, providers: Sequence[str]) -> Checks | None:
        """Per provider its newest check results ([] when none was evaluated yet); None when
        Dagster did not answer for some of them within the timeout (the answer then has no
        check results rather than waiting or failing)."""
        pairs = [(customer_id, p) for p in providers]
        now = time.monotonic()
        missing = [p for p in pairs if not self._fresh(p, now) and p not in self._fetching]
        if missing:
            task = asyncio.get_running_loop().create_task(self._fetch(missing))
            for pair in missing:
                self._fetching[pair] = task
        waiting = {self._fetching[p] for p in pairs if p in self._fetching}
        if waiting:
            await asyncio.wait(waiting, timeout=self._timeout)
        out: Checks = {}
        for customer_pair in pairs:
            entry = self._known.get(customer_pair)
            if entry is None or entry[1] is None:
                return None
            out[customer_pair[1]] = entry[1]
        return out
