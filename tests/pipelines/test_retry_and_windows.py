"""What all providers share: retries that honour Retry-After, pagination, trailing windows."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from cost_pipelines.assets.collection import DateWindow, trailing_window
from cost_pipelines.customers import AwsConfig, GcpConfig, VultrConfig
from cost_pipelines.resources.retry import (
    Paginator,
    RetriesExhausted,
    Retry,
    RetryPolicy,
    call_with_retries,
    http_status_verdict,
    retry_after_seconds,
)

AWS = AwsConfig(billing_account_id="123456789012")
GCP = GcpConfig(billing_account_ids=("b",))
VULTR = VultrConfig(billing_account_ids=("v",))


class Throttled(Exception):
    pass


def _flaky(failures: int, after: float | None):
    calls = {"n": 0}

    def call() -> str:
        calls["n"] += 1
        if calls["n"] <= failures:
            raise Throttled(after)
        return "answer"

    def classify(exc: BaseException) -> Retry | None:
        return Retry("throttled", exc.args[0]) if isinstance(exc, Throttled) else None

    return call, classify, calls


def test_a_server_retry_after_is_waited_exactly_before_trying_again() -> None:
    call, classify, calls = _flaky(2, after=7.0)
    waits: list[float] = []

    answer = call_with_retries(call, classify, policy=RetryPolicy(), what="t", sleep=waits.append)

    assert (answer, calls["n"], waits) == ("answer", 3, [7.0, 7.0])


def test_without_retry_after_the_backoff_grows_and_retries_end_with_a_clear_error() -> None:
    call, classify, _ = _flaky(10, after=None)
    waits: list[float] = []

    with pytest.raises(RetriesExhausted, match=r"ce: gave up after 4 attempts \(throttled\)"):
        call_with_retries(
            call, classify, policy=RetryPolicy(attempts=4), what="ce", sleep=waits.append
        )

    assert len(waits) == 3
    assert 0.5 <= waits[0] <= 1 and 1 <= waits[1] <= 2 and 2 <= waits[2] <= 4


def test_errors_the_classifier_refuses_are_raised_at_once() -> None:
    def call() -> None:
        raise KeyError("bad request")

    with pytest.raises(KeyError):
        call_with_retries(call, lambda exc: None, policy=RetryPolicy(), what="t")


def test_retry_after_headers_in_seconds_dates_and_azure_quota_form() -> None:
    assert retry_after_seconds({"Retry-After": "12"}) == 12.0
    assert retry_after_seconds({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert (
        retry_after_seconds({"x-ms-ratelimit-microsoft.costmanagement-qpu-retry-after": "9"}) == 9
    )
    assert http_status_verdict(429, {"retry-after": "3"}) == Retry("HTTP 429", 3.0)
    assert http_status_verdict(502, {}) == Retry("HTTP 502", None)
    assert http_status_verdict(400, {}) is None


def test_the_paginator_follows_every_token_and_counts_requests() -> None:
    pages = {None: ("a", "t2"), "t2": ("b", "t3"), "t3": ("c", None)}
    paginator = Paginator(lambda token: pages[token], lambda page: page[1])

    assert [page[0] for page in paginator] == ["a", "b", "c"]
    assert paginator.requests == 3


def test_the_paginator_stops_a_server_that_repeats_its_token() -> None:
    paginator = Paginator(lambda token: ("x", "same"), lambda page: page[1])
    with pytest.raises(RuntimeError, match="pagination did not end"):
        list(paginator)


@pytest.mark.parametrize(
    ("config", "today", "start"),
    [
        # AWS: 14 days, month to date, and the previous month until the 15th (restatements).
        (AWS, date(2026, 11, 30), date(2026, 11, 1)),
        (AWS, date(2026, 12, 3), date(2026, 11, 1)),
        (AWS, date(2026, 12, 20), date(2026, 12, 1)),
        (AWS, date(2026, 12, 16), date(2026, 12, 1)),
        # GCP: the 92-day restatement horizon (corrections arrive weeks later, dated to the
        # usage day); each run narrows it to the recent days plus the days the export_time
        # watermark shows changed (tests/pipelines/test_gcp_costs.py).
        (GCP, date(2026, 12, 20), date(2026, 9, 19)),
        (GCP, date(2026, 12, 4), date(2026, 9, 3)),
        # Vultr: the current and the previous invoice period.
        (VULTR, date(2026, 12, 20), date(2026, 11, 1)),
    ],
)
def test_trailing_windows_cover_each_providers_restatement_period(
    config: AwsConfig | GcpConfig | VultrConfig, today: date, start: date
) -> None:
    assert trailing_window(today, config) == DateWindow(start, today + timedelta(days=1))
