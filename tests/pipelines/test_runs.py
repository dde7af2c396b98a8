"""The schedule and the API agree on which runs are in flight: one list, owned by the pipelines."""

from __future__ import annotations

from dagster import DagsterRunStatus

from cost_api.control import runs as dagster_runs
from cost_pipelines import schedules
from cost_pipelines.runs import IN_FLIGHT


def test_the_api_and_the_schedule_share_one_in_flight_status_list() -> None:
    assert dagster_runs.IN_FLIGHT is IN_FLIGHT
    assert [status.value for status in schedules.IN_FLIGHT_STATUSES] == IN_FLIGHT


def test_every_in_flight_status_is_a_dagster_status_users_see_as_unfinished() -> None:
    assert {DagsterRunStatus(name) for name in IN_FLIGHT} == {
        DagsterRunStatus.QUEUED,
        DagsterRunStatus.NOT_STARTED,
        DagsterRunStatus.STARTING,
        DagsterRunStatus.STARTED,
    }
    assert {dagster_runs.STATUS[name] for name in IN_FLIGHT} == {"queued", "starting", "running"}
