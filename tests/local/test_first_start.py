"""The first start's history window, and the sandbox's Cost Explorer answers for it queued in the
order the runs ask (moto hands queued answers out in order, whatever the request)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from cost_local.first_start import HISTORY_MONTHS, history_window, queue_aws_history
from cost_local.sandbox.aws import reset_moto, seed_cost_explorer
from cost_local.sandbox.demo import accounts
from cost_local.sandbox.main import HISTORY_DAYS, bills_until
from cost_pipelines.assets.collection import MAX_WINDOW_DAYS, trailing_window
from cost_pipelines.customers import AwsConfig
from cost_pipelines.resources.clickhouse import ClickHouseResource
from tests.pipelines.aws_helpers import ENDPOINT_ENV, aws_entry, run_aws_costs
from tests.support.customers import write_customers


@pytest.mark.parametrize(
    ("today", "start"),
    [
        (date(2026, 12, 2), date(2025, 12, 1)),
        (date(2026, 12, 31), date(2025, 12, 1)),
        (date(2027, 1, 1), date(2026, 1, 1)),
        (date(2028, 2, 29), date(2027, 2, 1)),
    ],
)
def test_the_history_is_13_calendar_months_up_to_today(today: date, start: date) -> None:
    first, end = history_window(today)
    assert (first, end) == (start, today + timedelta(days=1))
    months = {
        (day.year, day.month) for day in (first + timedelta(n) for n in range((end - first).days))
    }
    assert len(months) == HISTORY_MONTHS
    # One run may collect it, and the sandbox's bills reach back that far.
    assert (end - first).days <= min(MAX_WINDOW_DAYS, HISTORY_DAYS)


@pytest.mark.slow
@pytest.mark.parametrize("trailing_runs_first", [True, False])
def test_each_aws_run_gets_the_answers_of_its_own_window(
    moto_url: str,
    warehouse_resource: ClickHouseResource,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    trailing_runs_first: bool,
) -> None:
    """The demo's trailing-window run and its history run, in either order, each reconcile
    with the Cost Explorer answers it was given."""
    today = datetime.now(UTC).date()
    history = history_window(today)
    aws = AwsConfig(billing_account_id=accounts()["aws"].billing_account_id)
    trailing = trailing_window(today, aws)
    reset_moto(moto_url)
    # As the sandbox does at its start: today's trailing window.
    seed_cost_explorer(
        moto_url,
        bills_until(today),
        trailing.start,
        trailing.end,
        estimated_from=today.replace(day=1),
    )

    queue_aws_history(moto_url, today, history, after_trailing=trailing_runs_first)

    monkeypatch.setenv(ENDPOINT_ENV, moto_url)
    monkeypatch.setenv("DEMO_KEY_ID", "AKIAFIRSTSTART000001")
    monkeypatch.setenv("DEMO_SECRET", "first-start-test-secret-0000000000000000")
    customers = write_customers(tmp_path / "customers.yaml", {"demo": aws_entry("demo", "DEMO")})
    windows = [(trailing.start, trailing.end), history]
    for start, end in windows if trailing_runs_first else reversed(windows):
        result = run_aws_costs(customers, "demo", warehouse_resource, start, end)
        assert result.success
        [materialization] = result.asset_materializations_for_node("aws_costs")
        assert materialization.metadata["window_start"].value == start.isoformat()
        assert materialization.metadata["rows_written"].value > 0
        checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
        assert checks == {"focus_conformance": True, "reconciles_with_provider": True}
