"""Every GraphQL document the API sends is valid against the installed dagster-graphql schema,
so a Dagster upgrade that renames a field fails here rather than as a 502 in production."""

from __future__ import annotations

from typing import Any

import pytest
from dagster_graphql.schema import create_schema
from graphql import GraphQLSchema, parse, validate

from cost_api.control import graphql as dagster_queries

DOCUMENTS = {
    name: value
    for name, value in vars(dagster_queries).items()
    if name.isupper() and isinstance(value, str) and value.lstrip().startswith(("query", "mut"))
}


@pytest.fixture(scope="module")
def schema() -> Any:
    built: GraphQLSchema = create_schema().graphql_schema
    return built


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_the_document_is_valid_against_dagsters_schema(schema: GraphQLSchema, name: str) -> None:
    assert validate(schema, parse(DOCUMENTS[name])) == []


def test_the_batched_newest_run_query_is_valid_for_several_pairs(schema: GraphQLSchema) -> None:
    assert validate(schema, parse(dagster_queries.newest_finished_runs(3))) == []


def test_the_batched_check_query_is_valid_for_several_checks(schema: GraphQLSchema) -> None:
    assert validate(schema, parse(dagster_queries.latest_check_executions(3))) == []


def test_every_document_is_checked() -> None:
    assert {"LAUNCH_RUN", "ADD_PARTITION", "RUN", "RUNS", "RUN_LOGS", "SCHEDULES", "PING"} <= (
        DOCUMENTS.keys()
    )
