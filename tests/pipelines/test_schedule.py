"""The 15-minute schedule, evaluated at fixed times against an instance holding past collections
and runs in flight."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from dagster import (
    AssetKey,
    AssetMaterialization,
    DagsterInstance,
    DagsterRunStatus,
    DefaultScheduleStatus,
    Definitions,
    build_schedule_context,
    define_asset_job,
)
from dagster._core.definitions.schedule_definition import ScheduleExecutionData
from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData
from dagster._core.events.log import EventLogEntry
from dagster._core.remote_origin import (
    InProcessCodeLocationOrigin,
    RemoteJobOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.storage.dagster_run import DagsterRun, make_new_run_id
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

from cost_pipelines.assets import PROVIDER_SPECS
from cost_pipelines.assets.collection import build_cost_asset
from cost_pipelines.partitions import PARTITIONS_NAME, customer_partitions
from cost_pipelines.resources.clickhouse import ClickHouseResource
from cost_pipelines.resources.customers import CustomersResource
from cost_pipelines.schedules import (
    CRON,
    CRON_ENV,
    SCHEDULE_NAME,
    build_collection_schedule,
    collection_cron,
)
from tests.support.customers import write_customers

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
AWS = {"billing_account_id": "123456789012"}
VULTR = {"billing_account_ids": ["cb676a46"]}


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[DagsterInstance]:
    # On disk, because schedule contexts need an instance they can reference; not entered as a
    # context manager, which would leave Dagster's global state pointing at a closed instance.
    test_instance = DagsterInstance.local_temp(str(tmp_path))
    yield test_instance
    test_instance.dispose()


@pytest.fixture
def customers_file(tmp_path: Path) -> Path:
    return write_customers(
        tmp_path / "customers.yaml",
        {
            "acme": {"providers": {"aws": AWS, "vultr": VULTR}},
            "globex": {"providers": {"aws": {**AWS, "min_poll_interval": "30m"}}},
            "broken": {"providers": {"aws": {"billing_account_id": "not-an-account"}}},
        },
    )


def _definitions(customers_file: Path) -> Definitions:
    """The cost assets, job and schedule over the code location's customer partitions; the
    schedule never executes an asset, so the assets are declared without their provider client
    resources."""
    job = define_asset_job("collect_costs", partitions_def=customer_partitions)
    assets = [build_cost_asset(spec, customer_partitions) for spec in PROVIDER_SPECS]
    return Definitions(
        assets=assets,
        jobs=[job],
        schedules=[build_collection_schedule()],
        resources={
            "customers": CustomersResource(path=str(customers_file)),
            "warehouse": ClickHouseResource(),  # never connected to by the schedule
            **{spec.provider: spec.resource for spec in PROVIDER_SPECS},  # nor these
        },
    )


def _tick(instance: DagsterInstance, customers_file: Path, at: datetime) -> ScheduleExecutionData:
    defs = _definitions(customers_file)
    # Closed on the way out: the context's own instance otherwise stays Dagster's current one
    # after it is garbage collected, and a later tick fails on its dead weak reference.
    with build_schedule_context(
        instance=instance,
        scheduled_execution_time=at,
        resources={"customers": CustomersResource(path=str(customers_file))},
        repository_def=defs.get_repository_def(),
    ) as context:
        return defs.resolve_schedule_def(SCHEDULE_NAME).evaluate_tick(context)


def _due(instance: DagsterInstance, customers_file: Path, at: datetime) -> set[tuple[str, str]]:
    requests = _tick(instance, customers_file, at).run_requests or []
    for request in requests:
        assert request.tags["trigger"] == "schedule"
        assert request.partition_key == request.tags["customer_id"]
        assert request.asset_selection == [AssetKey(f"{request.tags['provider']}_costs")]
    return {(r.tags["customer_id"], r.tags["provider"]) for r in requests}


def _collected(instance: DagsterInstance, customer: str, provider: str, at: datetime) -> None:
    """Record a successful collection of that pair at that time."""
    materialization = AssetMaterialization(AssetKey(f"{provider}_costs"), partition=customer)
    event = DagsterEvent(
        DagsterEventType.ASSET_MATERIALIZATION.value,
        job_name="collect_costs",
        event_specific_data=StepMaterializationData(materialization),
    )
    instance.store_event(
        EventLogEntry(
            error_info=None,
            level="debug",
            user_message="",
            run_id=make_new_run_id(),
            timestamp=at.timestamp(),
            dagster_event=event,
        )
    )


_END_EVENTS = {
    DagsterRunStatus.SUCCESS: DagsterEventType.RUN_SUCCESS,
    DagsterRunStatus.FAILURE: DagsterEventType.RUN_FAILURE,
}


def _run(
    instance: DagsterInstance,
    customer: str,
    provider: str,
    status: DagsterRunStatus,
    ended: datetime | None = None,
) -> None:
    """Record a run of that pair in the given status, as the API or an earlier tick made it;
    a finished run ends at `ended` the way Dagster records it (through its end event)."""
    tags = {"customer_id": customer, "provider": provider, "trigger": "manual"}
    location = InProcessCodeLocationOrigin(LoadableTargetOrigin(python_file=__file__))
    origin = RemoteJobOrigin(RemoteRepositoryOrigin(location, "__repository__"), "collect_costs")
    started = DagsterRunStatus.STARTED if ended else status
    run = DagsterRun(
        "collect_costs", make_new_run_id(), status=started, tags=tags, remote_job_origin=origin
    )
    instance.add_run(run)
    if ended:
        event = DagsterEvent(_END_EVENTS[status].value, job_name="collect_costs")
        instance.run_storage.handle_run_event(run.run_id, event, ended)


def test_the_schedule_ticks_every_15_minutes_in_utc_and_runs_by_default(
    customers_file: Path,
) -> None:
    schedule = _definitions(customers_file).resolve_schedule_def(SCHEDULE_NAME)
    assert (schedule.name, schedule.cron_schedule, CRON) == (SCHEDULE_NAME, CRON, "*/15 * * * *")
    assert schedule.execution_timezone == "UTC"
    assert schedule.default_status == DefaultScheduleStatus.RUNNING


def test_never_collected_pairs_are_all_due_and_the_broken_customer_does_not_stop_them(
    instance: DagsterInstance, customers_file: Path
) -> None:
    assert _due(instance, customers_file, NOW) == {
        ("acme", "aws"),
        ("acme", "vultr"),
        ("globex", "aws"),
    }


def test_a_pair_is_due_again_only_after_its_minimum_poll_interval(
    instance: DagsterInstance, customers_file: Path
) -> None:
    _collected(instance, "acme", "aws", NOW - timedelta(hours=5, minutes=45))
    _collected(instance, "acme", "vultr", NOW - timedelta(minutes=59))
    _collected(instance, "globex", "aws", NOW - timedelta(minutes=30))

    assert _due(instance, customers_file, NOW) == {("globex", "aws")}
    assert _due(instance, customers_file, NOW + timedelta(minutes=15)) == {
        ("acme", "aws"),
        ("acme", "vultr"),
        ("globex", "aws"),
    }


def test_pairs_already_queued_or_running_get_no_second_run(
    instance: DagsterInstance, customers_file: Path
) -> None:
    _run(instance, "acme", "aws", DagsterRunStatus.QUEUED)
    _run(instance, "globex", "aws", DagsterRunStatus.STARTED)
    # finished a day ago: no obstacle
    _run(instance, "acme", "vultr", DagsterRunStatus.FAILURE, ended=NOW - timedelta(days=1))

    assert _due(instance, customers_file, NOW) == {("acme", "vultr")}


def test_a_failing_pair_waits_15_minutes_after_its_failure(
    instance: DagsterInstance, customers_file: Path
) -> None:
    _run(instance, "acme", "aws", DagsterRunStatus.FAILURE, ended=NOW - timedelta(minutes=10))

    assert ("acme", "aws") not in _due(instance, customers_file, NOW)
    assert ("acme", "aws") in _due(instance, customers_file, NOW + timedelta(minutes=5))


def test_each_consecutive_failure_doubles_the_wait(
    instance: DagsterInstance, customers_file: Path
) -> None:
    for minutes_ago in (200, 150, 100):
        _run(
            instance,
            "acme",
            "aws",
            DagsterRunStatus.FAILURE,
            ended=NOW - timedelta(minutes=minutes_ago),
        )
    # Third failure in a row: 15 * 2 * 2 = 60 minutes after the newest one.
    assert ("acme", "aws") not in _due(instance, customers_file, NOW - timedelta(minutes=45))
    assert ("acme", "aws") in _due(instance, customers_file, NOW - timedelta(minutes=40))


def test_the_wait_after_failures_never_exceeds_the_poll_interval(
    instance: DagsterInstance, customers_file: Path
) -> None:
    for hours_ago in range(10, 0, -1):  # ten failures: 15 min * 2**9 would be 128 hours
        _run(
            instance,
            "globex",
            "aws",
            DagsterRunStatus.FAILURE,
            ended=NOW - timedelta(hours=hours_ago),
        )
        _run(
            instance,
            "acme",
            "aws",
            DagsterRunStatus.FAILURE,
            ended=NOW - timedelta(hours=hours_ago),
        )

    # globex polls every 30 minutes, acme's AWS every 6 hours (the default).
    assert _due(instance, customers_file, NOW - timedelta(minutes=45)) == {("acme", "vultr")}
    assert _due(instance, customers_file, NOW - timedelta(minutes=30)) == {
        ("acme", "vultr"),
        ("globex", "aws"),
    }
    assert ("acme", "aws") not in _due(instance, customers_file, NOW + timedelta(hours=4))
    assert ("acme", "aws") in _due(instance, customers_file, NOW + timedelta(hours=5))


def test_a_success_ends_the_failure_streak(instance: DagsterInstance, customers_file: Path) -> None:
    for hours_ago in (5, 4, 3):
        _run(
            instance,
            "acme",
            "vultr",
            DagsterRunStatus.FAILURE,
            ended=NOW - timedelta(hours=hours_ago),
        )
    _run(instance, "acme", "vultr", DagsterRunStatus.SUCCESS, ended=NOW - timedelta(hours=2))
    _collected(instance, "acme", "vultr", NOW - timedelta(hours=2))
    _run(instance, "acme", "vultr", DagsterRunStatus.FAILURE, ended=NOW - timedelta(minutes=20))

    # One failure since the success: 15 minutes, not the hour four in a row would cost.
    assert ("acme", "vultr") in _due(instance, customers_file, NOW)


def test_the_tick_makes_the_customers_of_the_file_its_partitions(
    instance: DagsterInstance, customers_file: Path
) -> None:
    """The invalid entry too: its runs then fail naming the bad field."""
    assert instance.get_dynamic_partitions(PARTITIONS_NAME) == []
    _tick(instance, customers_file, NOW)
    assert sorted(instance.get_dynamic_partitions(PARTITIONS_NAME)) == ["acme", "broken", "globex"]


def test_a_customer_added_to_the_file_is_collected_at_the_next_tick(
    instance: DagsterInstance, customers_file: Path
) -> None:
    for pair in (("acme", "aws"), ("acme", "vultr"), ("globex", "aws")):
        _collected(instance, *pair, NOW - timedelta(minutes=5))
    assert _due(instance, customers_file, NOW) == set()
    write_customers(
        customers_file,
        {
            "acme": {"providers": {"aws": AWS, "vultr": VULTR}},
            "globex": {"providers": {"aws": {**AWS, "min_poll_interval": "30m"}}},
            "initech": {"providers": {"vultr": VULTR}},
        },
    )
    # The same tick adds the partition and asks for its run (the request resolves against it).
    assert _due(instance, customers_file, NOW + timedelta(minutes=15)) == {("initech", "vultr")}
    assert "initech" in instance.get_dynamic_partitions(PARTITIONS_NAME)


def test_a_customer_removed_from_the_file_loses_its_partition_not_its_history(
    instance: DagsterInstance, customers_file: Path
) -> None:
    _tick(instance, customers_file, NOW)
    _collected(instance, "globex", "aws", NOW)
    write_customers(customers_file, {"acme": {"providers": {"aws": AWS}}})

    assert _due(instance, customers_file, NOW + timedelta(hours=1)) == {("acme", "aws")}
    assert instance.get_dynamic_partitions(PARTITIONS_NAME) == ["acme"]
    records = instance.fetch_materializations(AssetKey("aws_costs"), limit=10).records
    assert [r.partition_key for r in records] == ["globex"]


@pytest.mark.parametrize("content", ["customers: [unclosed", "not_customers: {}"])
def test_a_customers_file_that_cannot_be_read_removes_no_partition(
    instance: DagsterInstance, customers_file: Path, content: str
) -> None:
    _tick(instance, customers_file, NOW)
    customers_file.write_text(content, encoding="utf-8")

    _tick(instance, customers_file, NOW + timedelta(minutes=15))
    _tick(instance, customers_file.with_name("gone.yaml"), NOW + timedelta(minutes=30))

    assert sorted(instance.get_dynamic_partitions(PARTITIONS_NAME)) == ["acme", "broken", "globex"]


def test_an_unreadable_customers_file_skips_the_tick_with_the_reason(
    instance: DagsterInstance, tmp_path: Path
) -> None:
    missing = tmp_path / "missing.yaml"
    data = _tick(instance, missing, NOW)
    assert not data.run_requests
    assert data.skip_message == (
        f"nothing due at 2026-11-30 12:00 UTC; customers file: {missing}: cannot read: "
        "No such file or directory"
    )


def test_a_customers_file_with_only_errors_skips_the_tick_naming_each_error(
    instance: DagsterInstance, tmp_path: Path
) -> None:
    customers = write_customers(
        tmp_path / "customers.yaml",
        {
            "broken": {"providers": {"aws": {"billing_account_id": "not-an-account"}}},
            "Bad.Id": {"providers": {"vultr": VULTR}},
        },
    )
    message = _tick(instance, customers, NOW).skip_message or ""
    assert message.startswith("nothing due at 2026-11-30 12:00 UTC; customers file: ")
    assert "customer 'broken': providers.aws.billing_account_id" in message
    assert "customer 'Bad.Id': id must be" in message


def test_the_tick_cron_comes_from_the_environment_or_is_every_15_minutes() -> None:
    assert collection_cron({}) == CRON
    assert collection_cron({CRON_ENV: " */5 * * * * "}) == "*/5 * * * *"
    assert build_collection_schedule("0 * * * *").cron_schedule == "0 * * * *"


@pytest.mark.parametrize("cron", ["every minute", "* * * *", "* * * * * *", "*/5 * * * ;"])
def test_a_malformed_tick_cron_is_refused_naming_the_variable(cron: str) -> None:
    with pytest.raises(ValueError, match=CRON_ENV):
        collection_cron({CRON_ENV: cron})
