"""The retention job as Dagster runs it: registered with its daily schedule, and a run that
keeps everything younger than COST_RETENTION_DAYS reports what it deleted (nothing)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest

from cost_pipelines.definitions import defs
from cost_pipelines.resources.clickhouse import ClickHouseResource
from cost_pipelines.retention import JOB_NAME, SCHEDULE_NAME, retention_job
from cost_pipelines.warehouse.writer import CostWindow, replace_window


def test_the_job_is_in_the_code_location_with_a_daily_schedule() -> None:
    assert defs.get_job_def(JOB_NAME).name == JOB_NAME
    schedule = defs.get_schedule_def(SCHEDULE_NAME)
    minute, hour, *every = schedule.cron_schedule.split()
    assert every == ["*", "*", "*"] and minute.isdigit() and hour.isdigit()
    assert schedule.job_name == JOB_NAME


def test_a_run_keeps_loads_superseded_within_the_retention(
    warehouse_resource: ClickHouseResource, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COST_RETENTION_DAYS", "30")
    client = warehouse_resource.get_client()
    window = CostWindow("kept", "aws", "1", date(2026, 10, 1), date(2026, 10, 2))
    for amount in ("1", "2"):
        rows = pd.DataFrame(
            {
                "ChargePeriodStart": ["2026-10-01"],
                "BilledCost": [amount],
                "BillingCurrency": ["USD"],
            }
        )
        replace_window(client, window, rows, source="test")
    result = retention_job.execute_in_process(resources={"warehouse": warehouse_resource})
    assert result.success
    [step] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    metadata = {k: v.value for k, v in step.event_specific_data.metadata.items()}
    assert metadata["retention_days"] == 30
    assert metadata["superseded_lines_deleted"] == 0
    cutoff = datetime.fromisoformat(metadata["cutoff"])
    assert abs(cutoff - (datetime.now(UTC) - timedelta(days=30))) < timedelta(minutes=5)
    stored = client.query("SELECT count() FROM costs WHERE customer_id = 'kept'").result_rows
    assert stored[0][0] == 2
