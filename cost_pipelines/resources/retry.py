"""Retries with backoff and pagination, written once for every provider: providers only say which
failures are worth retrying (and how long the server asked us to wait) and how to fetch a page."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Generic, TypeVar

T = TypeVar("T")
Page = TypeVar("Page")

log = logging.getLogger(__name__)

# Headers in which servers say how long to wait: the HTTP standard one, and Azure Cost
# Management's quota headers (seconds).
RETRY_AFTER_HEADERS = (
    "retry-after",
    "x-ms-ratelimit-microsoft.costmanagement-qpu-retry-after",
    "x-ms-ratelimit-microsoft.costmanagement-entity-retry-after",
    "x-ms-ratelimit-microsoft.costmanagement-tenant-retry-after",
)
RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Retry:
    """A classifier's verdict: try again, after `after` seconds if the server said so."""

    reason: str
    after: float | None = None


Classifier = Callable[[BaseException], Retry | None]


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter; a server's Retry-After wins, capped at max_delay_s."""

    attempts: int = 5
    base_delay_s: float = 1.0
    max_delay_s: float = 120.0

    def delay(self, attempt: int, retry: Retry) -> float:
        if retry.after is not None:
            return min(max(retry.after, 0.0), self.max_delay_s)
        ceiling = min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)


class CollectionFailure(RuntimeError):
    """A failure whose message is complete and safe to show users (it never holds secrets)."""


class RetriesExhausted(CollectionFailure):
    """Every attempt failed with a retryable error; the last one is the cause."""


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asked us to wait, from Retry-After (seconds or HTTP date) and kin."""
    lowered = {k.lower(): v for k, v in headers.items()}
    for name in RETRY_AFTER_HEADERS:
        value = lowered.get(name)
        if not value:
            continue
        try:
            return float(value)
        except ValueError:
            pass
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            continue
    return None


def http_status_verdict(status: int, headers: Mapping[str, str]) -> Retry | None:
    """The shared rule for HTTP answers: throttling and server errors are worth another try."""
    if status in RETRYABLE_STATUS or status >= 500:
        return Retry(f"HTTP {status}", retry_after_seconds(headers))
    return None


def call_with_retries(
    call: Callable[[], T],
    classify: Classifier,
    *,
    policy: RetryPolicy,
    what: str,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run `call`; retry the failures `classify` accepts, waiting as the policy says."""
    for attempt in range(1, policy.attempts + 1):
        try:
            return call()
        except Exception as exc:
            verdict = classify(exc)
            if verdict is None:
                raise
            if attempt == policy.attempts:
                raise RetriesExhausted(
                    f"{what}: gave up after {attempt} attempts ({verdict.reason})"
                ) from exc
            wait = policy.delay(attempt, verdict)
            log.warning("%s: %s; retry %d in %.1fs", what, verdict.reason, attempt, wait)
            sleep(wait)
    raise AssertionError("unreachable: the loop returns or raises")


@dataclass
class Paginator(Generic[Page]):
    """Follow next-page tokens until there is none; counts requests (they may cost money)."""

    fetch: Callable[[str | None], Page]
    next_token: Callable[[Page], str | None]
    max_pages: int = 10_000
    requests: int = 0

    def __iter__(self) -> Iterator[Page]:
        token: str | None = None
        seen: set[str] = set()
        while True:
            page = self.fetch(token)
            self.requests += 1
            yield page
            token = self.next_token(page) or None
            if token is None:
                return
            if token in seen or self.requests >= self.max_pages:
                raise RuntimeError(f"pagination did not end after {self.requests} pages")
            seen.add(token)
