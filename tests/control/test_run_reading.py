"""What the API makes of Dagster's answers: statuses, metadata, failure causes without secrets,
and how fresh a collector is. Dagster's answer shapes here are copied from a real 1.13 webserver."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from cost_api.control.runs import parse_failure, parse_run
from cost_api.routes.collectors import freshness
from cost_pipelines.redaction import MASK, Redactor, env_names_in_customers_file

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
RUN = {
    "runId": "25fa7541-d43a-48e1-8738-f6fa590ddda7",
    "status": "SUCCESS",
    "creationTime": 1796004986.075172,
    "startTime": 1796004990.967229,
    "endTime": 1796005000.086984,
    "tags": [
        {"key": "customer_id", "value": "acme"},
        {"key": "dagster/partition", "value": "acme"},
        {"key": "dagster/schedule_name", "value": "collect_costs_every_15_minutes"},
        {"key": "provider", "value": "aws"},
        {"key": "trigger", "value": "schedule"},
    ],
    "assetMaterializations": [
        {
            "metadataEntries": [
                {"__typename": "IntMetadataEntry", "label": "rows_written", "intRepr": "3"},
                {
                    "__typename": "JsonMetadataEntry",
                    "label": "totals",
                    "jsonString": '{"EUR": "0.0000001", "USD": "1.50"}',
                },
                {"__typename": "TextMetadataEntry", "label": "window_start", "text": "2026-11-01"},
                {"__typename": "TextMetadataEntry", "label": "window_end", "text": "2026-11-04"},
            ]
        }
    ],
}
STEP_FAILURE = {
    "__typename": "ExecutionStepFailureEvent",
    "stepKey": "aws_costs",
    "message": 'Execution of step "aws_costs" failed.',
    "error": {
        "message": "dagster._core.errors.DagsterExecutionStepExecutionError: Error occurred\n",
        "className": "DagsterExecutionStepExecutionError",
        "errorChain": [
            {
                "isExplicitLink": True,
                "error": {
                    "message": f"ClientError: signature of key {SECRET} with Bearer abc.def.ghi1 "
                    "did not match\n",
                    "className": "ClientError",
                },
            }
        ],
    },
}


def test_a_scheduled_run_reads_as_scheduled_with_its_rows_totals_and_window() -> None:
    run = parse_run(RUN)

    assert (run.status, run.customer_id, run.provider, run.trigger) == (
        "success",
        "acme",
        "aws",
        "scheduled",
    )
    assert run.rows_written == 3
    assert run.totals == {"EUR": Decimal("0.0000001"), "USD": Decimal("1.50")}
    assert (run.window_start, run.window_end) == ("2026-11-01", "2026-11-04")
    assert run.created_at == datetime.fromtimestamp(1796004986.075172, UTC)


@pytest.mark.parametrize(
    ("dagster_status", "shown"),
    [
        ("QUEUED", "queued"),
        ("STARTING", "starting"),
        ("STARTED", "running"),
        ("CANCELED", "canceled"),
    ],
)
def test_dagster_statuses_read_as_the_api_statuses(dagster_status: str, shown: str) -> None:
    assert parse_run({**RUN, "status": dagster_status}).status == shown


def test_a_failure_leads_with_the_innermost_cause_and_hides_secrets() -> None:
    failure = parse_failure([STEP_FAILURE], Redactor([]))

    assert failure is not None
    assert failure.step == "aws_costs"
    assert failure.message.startswith("signature of key")
    assert [link.error_class for link in failure.chain] == [
        "DagsterExecutionStepExecutionError",
        "ClientError",
    ]
    assert SECRET not in failure.message and "abc.def.ghi1" not in failure.message
    assert failure.message.count(MASK) == 2


def test_values_of_the_customers_files_credential_variables_are_masked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    customers = tmp_path / "customers.yaml"
    entry = {
        "aws": {"credentials": {"access_key_id_env": "ACME_ID"}, "endpoint_url_env": "ACME_URL"},
        "vultr": {"credentials": {"api_key": "ACME_VULTR"}},
    }
    customers.write_text(yaml.safe_dump({"customers": {"acme": {"providers": entry}}}))
    monkeypatch.setenv("ACME_VULTR", "vultr-plain-key-1")
    monkeypatch.setenv("ACME_URL", "http://127.0.0.1:5000")

    names = env_names_in_customers_file(customers)
    redact = Redactor.from_environment(names)

    assert names == {"ACME_ID", "ACME_VULTR"}
    assert redact("vultr said 401 for vultr-plain-key-1 at http://127.0.0.1:5000") == (
        f"vultr said 401 for {MASK} at http://127.0.0.1:5000"
    )


def test_hex_digests_and_run_ids_stay_readable() -> None:
    text = "run 25fa7541-d43a-48e1-8738-f6fa590ddda7 sha 0123456789abcdef0123456789abcdef01234567"
    assert Redactor([])(text) == text


NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.mark.parametrize(
    ("last_success", "last_status", "state"),
    [
        (NOW - timedelta(minutes=59), "SUCCESS", "fresh"),
        (NOW - timedelta(minutes=75), "SUCCESS", "due"),
        (NOW - timedelta(minutes=95), "SUCCESS", "overdue"),
        (None, None, "overdue"),
        (NOW - timedelta(minutes=5), "FAILURE", "failing"),
        (NOW - timedelta(minutes=5), "CANCELED", "fresh"),
    ],
)
def test_a_collector_is_fresh_due_overdue_or_failing(
    last_success: datetime | None, last_status: str | None, state: str
) -> None:
    assert freshness(last_success, HOUR, last_status, NOW) == state
