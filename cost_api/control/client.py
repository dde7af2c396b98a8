"""The API's only way to Dagster: launch, read and list collection runs over its GraphQL API."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import httpx

from cost_api.control import graphql as q
from cost_api.control.runs import (
    IN_FLIGHT,
    WINDOW_END_TAG,
    WINDOW_START_TAG,
    CheckResult,
    CollectionRun,
    LastSuccess,
    RunFailure,
    RunPage,
    ScheduleInfo,
    parse_failure,
    parse_run,
)
from cost_api.errors import ServiceUnavailable
from cost_api.telemetry import observe_dagster
from cost_pipelines.runs import CUSTOMER_PARTITIONS, PAIR_TAG, pair_tag_value

REPOSITORY_NAME = "__repository__"
JOB_NAME = "collect_costs"
ASSET_GROUP = "costs"
SERVICE = "dagster"
MAX_LOG_PAGES = 20
FINISHED = ["SUCCESS", "FAILURE", "CANCELED"]
log = logging.getLogger(__name__)


# "dagster._core.errors.DagsterUserCodeUnreachableError" -> "DagsterUserCodeUnreachableError":
# clients get what went wrong, not the server's module layout.
_DOTTED_PATH = re.compile(r"\b(?:[A-Za-z_][A-Za-z0-9_]*\.)+(?=[A-Za-z_][A-Za-z0-9_]*\b)")
# Dagster's webserver is up but cannot reach the code location (it is starting or restarting).
_TRANSIENT = ("DagsterUserCodeUnreachableError", "DagsterUserCodeProcessError")
_OPERATION = re.compile(r"^\s*(?:query|mutation)\s+([A-Za-z_][A-Za-z0-9_]*)", re.M)


def without_paths(text: str) -> str:
    """A Dagster message without dotted module paths (class names and words stay)."""
    return _DOTTED_PATH.sub("", text)


def operation_name(document: str) -> str:
    """The operation a GraphQL document names (`query Runs(...)` -> Runs): a metric label that
    only the code decides."""
    found = _OPERATION.search(document)
    return found.group(1) if found else "anonymous"


class RunNotFound(Exception):
    """Dagster has no run with this id."""


def asset_name(provider: str) -> str:
    return f"{provider}_costs"


@dataclass(frozen=True)
class RequestedRun:
    """A run a schedule's evaluation asks for: what its tick would launch."""

    job_name: str
    tags: dict[str, str]
    asset_paths: list[list[str]]
    run_config_yaml: str


@dataclass(frozen=True)
class Evaluation:
    """A schedule evaluated now: the runs it asks for, or why it asks for none (its skip
    reason, or the error its evaluation raised)."""

    runs: list[RequestedRun]
    skip_reason: str | None
    error: str | None = None


class DagsterClient:
    """Talks to one Dagster webserver; every failure surfaces as ServiceUnavailable (503 when
    Dagster is unreachable or slow, 502 when it answers with an error) or RunNotFound."""

    def __init__(
        self,
        graphql_url: str,
        location_name: str,
        *,
        timeout_s: float = 10.0,
        redact: Callable[[str], str] = lambda text: text,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._url = graphql_url
        self._location = location_name
        self._redact = redact
        self._http = httpx.AsyncClient(timeout=timeout_s, transport=transport)

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- transport: the one place where Dagster failures become API errors --------------------

    async def _execute(self, document: str, variables: dict[str, Any] | None = None) -> Any:
        """One GraphQL request; its latency is observed by operation and outcome (/metrics)."""
        started = time.perf_counter()
        outcome = "error"  # Dagster answered, with an error or not with GraphQL
        try:
            try:
                response = await self._http.post(
                    self._url, json={"query": document, "variables": variables or {}}
                )
            except httpx.TimeoutException as exc:
                outcome = "timeout"
                raise ServiceUnavailable(SERVICE, "Dagster did not answer in time", 503) from exc
            except httpx.TransportError as exc:
                outcome = "unreachable"
                raise ServiceUnavailable(
                    SERVICE, "cannot reach the Dagster webserver", 503
                ) from exc
            except asyncio.CancelledError:  # the caller stopped waiting (the checks' timeout)
                outcome = "cancelled"
                raise
            data = self._data(response)
            outcome = "ok"
            return data
        finally:
            observe_dagster(operation_name(document), outcome, time.perf_counter() - started)

    def _data(self, response: httpx.Response) -> Any:
        try:
            body = response.json()
        except ValueError as exc:
            # A proxy page or a starting webserver: not Dagster's GraphQL answering.
            status = 503 if response.status_code >= 500 else 502
            reason = f"Dagster answered HTTP {response.status_code} without GraphQL"
            raise ServiceUnavailable(SERVICE, reason, status) from exc
        # Dagster answers PythonError results with HTTP 500 and a data payload: read the payload.
        if not isinstance(body, dict) or body.get("errors") or body.get("data") is None:
            messages = [e.get("message", "") for e in (body or {}).get("errors") or []]
            reason = "GraphQL error: " + ("; ".join(messages)[:300] or "no data")
            raise self._failure(reason)
        return body["data"]

    def _expect(self, result: dict[str, Any], typename: str, run_id: str | None = None) -> Any:
        kind = result.get("__typename")
        if kind == typename:
            return result
        if kind == "RunNotFoundError":
            raise RunNotFound(run_id or "")
        message = result.get("message") or "; ".join(
            e.get("message", "") for e in result.get("errors") or []
        )
        first_line = (message or "").strip().splitlines()[0] if message else ""
        raise self._failure(f"{kind}: {first_line}", result.get("className"))

    def _failure(self, reason: str, class_name: str | None = None) -> ServiceUnavailable:
        """Dagster answered with an error: 503 when it only cannot reach its code location yet
        (retry soon), else 502; the reason without module paths or secrets, the full one logged."""
        log.warning("Dagster answered an error: %s", self._redact(reason))
        transient = class_name in _TRANSIENT or any(name in reason for name in _TRANSIENT)
        text = self._redact(without_paths(reason))[:300]
        if transient:
            return ServiceUnavailable(SERVICE, "Dagster cannot reach its code location yet", 503)
        return ServiceUnavailable(SERVICE, text, 502)

    # -- collection control --------------------------------------------------------------------

    def _repository(self) -> dict[str, str]:
        return {"repositoryLocationName": self._location, "repositoryName": REPOSITORY_NAME}

    async def add_customer_partition(self, customer_id: str) -> bool:
        """Make the customer a partition of the cost assets unless it is one already (a trigger
        may come before the schedule's tick that adds a customer new in the file); True if it
        was added now. A run of a partition Dagster does not know would fail."""
        variables = {
            "repository": self._repository(),
            "name": CUSTOMER_PARTITIONS,
            "key": customer_id,
        }
        data = await self._execute(q.ADD_PARTITION, variables)
        result = data["addDynamicPartition"]
        if result.get("__typename") == "DuplicateDynamicPartitionError":
            return False
        self._expect(result, "AddDynamicPartitionSuccess")
        return True

    async def launch_collection(
        self,
        customer_id: str,
        provider: str,
        requested_by: str,
        window: tuple[date, date] | None = None,
    ) -> str:
        """Start collecting one provider for one customer now; returns the Dagster run id."""
        tags = {
            "customer_id": customer_id,
            "provider": provider,
            "trigger": "manual",
            "requested_by": requested_by,
            "dagster/partition": customer_id,
            PAIR_TAG: pair_tag_value(customer_id, provider),
        }
        if window is not None:
            tags[WINDOW_START_TAG], tags[WINDOW_END_TAG] = (day.isoformat() for day in window)
        params: dict[str, Any] = {
            "selector": {
                **self._repository(),
                "jobName": JOB_NAME,
                "assetSelection": [{"path": [asset_name(provider)]}],
            },
            "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in tags.items()]},
        }
        if window is not None:
            start, end = window
            config = {"start": start.isoformat(), "end": end.isoformat()}
            params["runConfigData"] = {"ops": {asset_name(provider): {"config": config}}}
        data = await self._execute(q.LAUNCH_RUN, {"params": params})
        result = self._expect(data["launchRun"], "LaunchRunSuccess")
        return str(result["run"]["runId"])

    async def evaluate_schedule(self, schedule_name: str, at: datetime) -> Evaluation:
        """Evaluate a schedule as its tick at `at` would (Dagster's dry run: nothing launched)."""
        selector = {**self._repository(), "scheduleName": schedule_name}
        data = await self._execute(
            q.SCHEDULE_DRY_RUN, {"selector": selector, "timestamp": at.timestamp()}
        )
        tick = self._expect(data["scheduleDryRun"], "DryRunInstigationTick")
        result = tick["evaluationResult"] or {}
        error = (result.get("error") or {}).get("message")
        runs = [
            RequestedRun(
                job_name=request.get("jobName") or JOB_NAME,
                tags={tag["key"]: tag["value"] for tag in request["tags"]},
                asset_paths=[key["path"] for key in request.get("assetSelection") or []],
                run_config_yaml=request.get("runConfigYaml") or "{}",
            )
            for request in result.get("runRequests") or []
        ]
        return Evaluation(runs, result.get("skipReason"), self._redact(error) if error else None)

    async def launch_requested(self, run: RequestedRun, tags: Mapping[str, str]) -> str:
        """Launch a run a schedule's evaluation asked for, with its tags and these; its run id."""
        params: dict[str, Any] = {
            "selector": {
                **self._repository(),
                "jobName": run.job_name,
                "assetSelection": [{"path": path} for path in run.asset_paths],
            },
            "runConfigData": run.run_config_yaml,
            "executionMetadata": {
                "tags": [{"key": k, "value": v} for k, v in {**run.tags, **tags}.items()]
            },
        }
        data = await self._execute(q.LAUNCH_RUN, {"params": params})
        return str(self._expect(data["launchRun"], "LaunchRunSuccess")["run"]["runId"])

    async def launch_backfill(
        self,
        *,
        partition: str,
        provider: str,
        window: tuple[date, date],
        tags: Mapping[str, str],
        title: str,
        description: str,
    ) -> str:
        """A Dagster backfill of one customer's provider asset over an explicit window: one
        `collect_costs` run tagged like every collection of that pair, so the pair's run queue,
        the schedule and the API see it; returns the backfill id."""
        start, end = (day.isoformat() for day in window)
        all_tags = {
            **tags,
            "customer_id": partition,
            "provider": provider,
            PAIR_TAG: pair_tag_value(partition, provider),
            WINDOW_START_TAG: start,
            WINDOW_END_TAG: end,
        }
        params = {
            # A backfill of the collection job (its runs are `collect_costs` runs, like every
            # other collection of the pair), selecting the provider's asset.
            "selector": {
                "partitionSetName": f"{JOB_NAME}_partition_set",
                "repositorySelector": self._repository(),
            },
            "partitionNames": [partition],
            "assetSelection": [{"path": [asset_name(provider)]}],
            "tags": [{"key": k, "value": v} for k, v in all_tags.items()],
            "runConfigData": {
                "ops": {asset_name(provider): {"config": {"start": start, "end": end}}}
            },
            "title": title,
            "description": description,
        }
        data = await self._execute(q.LAUNCH_BACKFILL, {"params": params})
        result = self._expect(data["launchPartitionBackfill"], "LaunchBackfillSuccess")
        return str(result["backfillId"])

    async def cancel_run(self, run_id: str) -> bool:
        """Cancel a run (a queued one never starts); False if it had already finished."""
        data = await self._execute(q.TERMINATE_RUN, {"runId": run_id})
        result = data["terminateRun"]
        if result.get("__typename") == "TerminateRunFailure":
            return False  # ended on its own meanwhile: nothing left to cancel
        self._expect(result, "TerminateRunSuccess", run_id)
        return True

    async def get_run(self, run_id: str) -> CollectionRun:
        """One run with its metadata and tags, without its failure cause (see `failure_of`: the
        caller checks the run's customer first). Raises RunNotFound."""
        data = await self._execute(q.RUN, {"runId": run_id})
        return parse_run(self._expect(data["runOrError"], "Run", run_id))

    async def failure_of(self, run_id: str) -> RunFailure | None:
        """Why a failed run failed, read from its event log (one or more log pages)."""
        events: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(MAX_LOG_PAGES):
            data = await self._execute(q.RUN_LOGS, {"runId": run_id, "cursor": cursor})
            page = self._expect(data["logsForRun"], "EventConnection", run_id)
            events.extend(e for e in page["events"] if e.get("error") or e.get("message"))
            cursor = page["cursor"]
            if not page["hasMore"]:
                break
        return parse_failure(events, self._redact)

    async def list_runs(
        self,
        customer_id: str,
        provider: str | None = None,
        statuses: Sequence[str] | None = None,
        cursor: str | None = None,
        limit: int = 20,
    ) -> RunPage:
        """The customer's collection runs, newest first, one page after `cursor` (a run id),
        without failure causes."""
        tags = [{"key": "customer_id", "value": customer_id}]
        if provider:
            tags.append({"key": "provider", "value": provider})
        run_filter: dict[str, Any] = {"pipelineName": JOB_NAME, "tags": tags}
        if statuses:
            run_filter["statuses"] = list(statuses)
        variables = {"filter": run_filter, "cursor": cursor, "limit": limit + 1}
        data = await self._execute(q.RUNS, variables)
        result = self._expect(data["runsOrError"], "Runs")
        # No failure causes here: they live in each run's event log, one request per run, which
        # a page of a long history cannot afford. collection-status reads the cause of one run.
        runs = [parse_run(raw) for raw in result["results"][:limit]]
        more = len(result["results"]) > limit
        return RunPage(runs, int(result["count"]), runs[-1].run_id if more and runs else None)

    async def find_in_flight(self, customer_id: str, provider: str) -> list[CollectionRun]:
        """Queued or running runs of one pair, oldest first."""
        page = await self.list_runs(customer_id, provider, statuses=IN_FLIGHT, limit=50)
        return sorted(page.runs, key=lambda run: (run.created_at, run.run_id))

    async def last_finished_status(
        self, pairs: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], str]:
        """Status of the newest finished run of each (customer, provider): one batched request."""
        if not pairs:
            return {}
        variables = {
            f"f{i}": {
                "pipelineName": JOB_NAME,
                "tags": [
                    {"key": "customer_id", "value": customer_id},
                    {"key": "provider", "value": provider},
                ],
                "statuses": FINISHED,
            }
            for i, (customer_id, provider) in enumerate(pairs)
        }
        document = q.newest_finished_runs(len(pairs))
        data = await self._execute(document, variables)
        out = {}
        for i, pair in enumerate(pairs):
            results = self._expect(data[f"p{i}"], "Runs")["results"]
            if results:
                out[pair] = str(results[0]["status"])
        return out

    async def latest_checks(
        self, pairs: Sequence[tuple[str, str]], check_names: Sequence[str]
    ) -> dict[tuple[str, str], list[CheckResult]]:
        """The newest evaluation of each check of each (customer, provider): one request."""
        triples = [(pair, name) for pair in pairs for name in check_names]
        if not triples:
            return {}
        variables: dict[str, Any] = {}
        for i, ((customer_id, provider), name) in enumerate(triples):
            variables[f"a{i}"] = {"path": [f"{provider}_costs"]}
            variables[f"n{i}"] = name
            variables[f"p{i}"] = customer_id
        data = await self._execute(q.latest_check_executions(len(triples)), variables)
        out: dict[tuple[str, str], list[CheckResult]] = {}
        for i, (pair, name) in enumerate(triples):
            for execution in data[f"c{i}"] or []:
                evaluation = execution.get("evaluation") or {}
                out.setdefault(pair, []).append(
                    CheckResult(
                        name=name,
                        passed=bool(evaluation.get("success")),
                        status=str(execution["status"]),
                        severity=evaluation.get("severity"),
                        description=evaluation.get("description"),
                        run_id=str(execution["runId"]),
                        at=datetime.fromtimestamp(float(execution["timestamp"]), UTC),
                    )
                )
        return out

    async def last_success_per_pair(self, customer_ids: Sequence[str]) -> list[LastSuccess]:
        """The newest materialization of each provider asset for each customer partition."""
        group = {**self._repository(), "groupName": ASSET_GROUP}
        data = await self._execute(
            q.LATEST_MATERIALIZATIONS, {"group": group, "partitions": list(customer_ids)}
        )
        found = []
        for node in data["assetNodes"]:
            name = node["assetKey"]["path"][-1]
            provider = name.removesuffix("_costs")
            for event in node["latestMaterializationByPartition"]:
                if event is None:
                    continue
                at = datetime.fromtimestamp(int(event["timestamp"]) / 1000, UTC)
                found.append(LastSuccess(event["partition"], provider, event["runId"], at))
        return found

    async def schedule_state(self) -> list[ScheduleInfo]:
        """The code location's schedules: on or off, and when each ticks next."""
        data = await self._execute(q.SCHEDULES, {"repository": self._repository()})
        result = self._expect(data["schedulesOrError"], "Schedules")
        schedules = []
        for raw in result["results"]:
            state = raw["scheduleState"]
            tick = (state.get("nextTick") or {}).get("timestamp")
            schedules.append(
                ScheduleInfo(
                    name=raw["name"],
                    cron=raw["cronSchedule"],
                    timezone=raw.get("executionTimezone") or "UTC",
                    running=state["status"] == "RUNNING",
                    next_tick=datetime.fromtimestamp(tick, UTC) if tick else None,
                )
            )
        return schedules

    async def ping(self) -> tuple[str, float]:
        """Dagster's version and the round trip in milliseconds; ServiceUnavailable when the
        webserver answers but our code location is missing or failed to load."""
        started = time.perf_counter()
        data = await self._execute(q.PING, {"location": self._location})
        latency = (time.perf_counter() - started) * 1000
        entry = data["workspaceLocationEntryOrError"]
        if entry is None:
            raise ServiceUnavailable(SERVICE, f"no code location {self._location!r}", 503)
        entry = self._expect(entry, "WorkspaceLocationEntry")
        loaded = entry.get("locationOrLoadError") or {}
        if loaded.get("__typename") != "RepositoryLocation":
            cause = (loaded.get("message") or entry["loadStatus"].lower()).strip().splitlines()
            reason = f"code location {self._location!r} not loaded: {cause[0] if cause else ''}"
            raise ServiceUnavailable(SERVICE, self._redact(without_paths(reason))[:300], 503)
        return str(data["version"]), latency
