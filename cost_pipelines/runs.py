"""What the pipelines and the API agree on about Dagster runs of a (customer, provider) pair."""

from __future__ import annotations

# Dagster run statuses (by name) of a run that is queued, starting or running: a pair with such a
# run gets no second one, from the schedule or the API. Names, not enums, so the API can use them
# in GraphQL filters without importing Dagster.
IN_FLIGHT: list[str] = ["QUEUED", "NOT_STARTED", "STARTING", "STARTED"]

# The name of the customers' dynamic partitions (cost_pipelines/partitions.py): the API adds a
# customer's partition through Dagster's GraphQL before it launches the customer's first run.
CUSTOMER_PARTITIONS = "customers"

# Manual and scheduled runs carry this tag; the run queue lets one run per value go at a time, so a
# customer/provider pair is never collected twice at once (the windowed replace would race).
PAIR_TAG = "cost_pipelines/pair"


def pair_tag_value(customer_id: str, provider: str) -> str:
    """The value of PAIR_TAG for one customer/provider pair."""
    return f"{customer_id}.{provider}"


# The asset checks a collection run evaluates on the window it wrote (partitioned per customer:
# the API's collectors status shows each pair's newest result), and the freshness check.
CONFORMANCE = "focus_conformance"
RECONCILIATION = "reconciles_with_provider"
WINDOW_CHECKS = (CONFORMANCE, RECONCILIATION)
FRESHNESS = "collected_within_poll_interval"
