"""The GraphQL documents the API sends to Dagster's webserver (dagster-graphql 1.13)."""

from __future__ import annotations

RUN_FIELDS = """
fragment RunFields on Run {
  runId
  status
  creationTime
  startTime
  endTime
  tags { key value }
  assetMaterializations {
    metadataEntries {
      __typename
      label
      ... on IntMetadataEntry { intRepr }
      ... on TextMetadataEntry { text }
      ... on JsonMetadataEntry { jsonString }
    }
  }
}
"""

ERROR_FIELDS = """
fragment ErrorFields on PythonError {
  message
  className
  errorChain { isExplicitLink error { message className } }
}
"""

LAUNCH_RUN = """
mutation LaunchCollection($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on Error { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}
"""

ADD_PARTITION = """
mutation AddPartition($repository: RepositorySelector!, $name: String!, $key: String!) {
  addDynamicPartition(
    repositorySelector: $repository, partitionsDefName: $name, partitionKey: $key
  ) {
    __typename
    ... on Error { message }
  }
}
"""

# The collection schedule evaluated now (what its next tick would launch): `make run` launches
# the answer at start instead of waiting for the next quarter hour.
SCHEDULE_DRY_RUN = """
mutation EvaluateSchedule($selector: ScheduleSelector!, $timestamp: Float) {
  scheduleDryRun(selectorData: $selector, timestamp: $timestamp) {
    __typename
    ... on DryRunInstigationTick {
      evaluationResult {
        runRequests { runKey tags { key value } runConfigYaml assetSelection { path } jobName }
        skipReason
        error { message }
      }
    }
    ... on Error { message }
  }
}
"""

LAUNCH_BACKFILL = """
mutation LaunchBackfill($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on Error { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}
"""

RUN = (
    """
query Run($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { ...RunFields }
    ... on Error { message }
  }
}
"""
    + RUN_FIELDS
)

RUNS = (
    """
query Runs($filter: RunsFilter, $cursor: String, $limit: Int) {
  runsOrError(filter: $filter, cursor: $cursor, limit: $limit) {
    __typename
    ... on Runs { count results { ...RunFields } }
    ... on Error { message }
  }
}
"""
    + RUN_FIELDS
)

RUN_LOGS = (
    """
query RunLogs($runId: ID!, $cursor: String) {
  logsForRun(runId: $runId, afterCursor: $cursor, limit: 1000) {
    __typename
    ... on EventConnection {
      cursor
      hasMore
      events {
        __typename
        ... on ExecutionStepFailureEvent { stepKey message error { ...ErrorFields } }
        ... on RunFailureEvent { message error { ...ErrorFields } }
      }
    }
    ... on Error { message }
  }
}
"""
    + ERROR_FIELDS
)

TERMINATE_RUN = """
mutation CancelRun($runId: String!) {
  terminateRun(runId: $runId) {
    __typename
    ... on Error { message }
  }
}
"""

SCHEDULES = """
query Schedules($repository: RepositorySelector!) {
  schedulesOrError(repositorySelector: $repository) {
    __typename
    ... on Schedules {
      results {
        name
        cronSchedule
        executionTimezone
        scheduleState { status nextTick { timestamp } }
      }
    }
    ... on Error { message }
  }
}
"""

LATEST_MATERIALIZATIONS = """
query LatestMaterializations($group: AssetGroupSelector!, $partitions: [String!]) {
  assetNodes(group: $group) {
    assetKey { path }
    latestMaterializationByPartition(partitions: $partitions) { partition runId timestamp }
  }
}
"""

PING = """
query Ping($location: String!) {
  version
  workspaceLocationEntryOrError(name: $location) {
    __typename
    ... on WorkspaceLocationEntry {
      loadStatus
      locationOrLoadError { __typename ... on PythonError { message } }
    }
    ... on Error { message }
  }
}
"""


def latest_check_executions(count: int) -> str:
    """One request for the newest execution of `count` (asset, check, partition) triples, passed
    as variables $a0, $n0, $p0, $a1, ..."""
    params = ", ".join(
        f"$a{i}: AssetKeyInput!, $n{i}: String!, $p{i}: String" for i in range(count)
    )
    fields = " ".join(
        f"c{i}: assetCheckExecutions(assetKey: $a{i}, checkName: $n{i}, partition: $p{i}, "
        f"limit: 1) {{ ...Execution }}"
        for i in range(count)
    )
    return (
        f"query LatestChecks({params}) {{ {fields} }}\n"
        "fragment Execution on AssetCheckExecution { runId status timestamp "
        "evaluation { success severity description } }"
    )


def newest_finished_runs(count: int) -> str:
    """One request for the newest run of `count` run filters, passed as variables $f0, $f1, ..."""
    params = ", ".join(f"$f{i}: RunsFilter" for i in range(count))
    fields = " ".join(
        f"p{i}: runsOrError(filter: $f{i}, limit: 1) {{ ...Newest }}" for i in range(count)
    )
    return (
        f"query NewestFinished({params}) {{ {fields} }}\n"
        "fragment Newest on RunsOrError { __typename "
        "... on Runs { results { status } } ... on Error { message } }"
    )
