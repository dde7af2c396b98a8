"""What the pipelines and the API agree on about Dagster runs of a (customer, provider) pair."""

from __future__ import annotations

# Dagster run statuses (by name) of a run that is queued, starting or running: a pair with such a
# run gets no second one, from the schedule or the API. Names, not enums, so the API can use them
# in GraphQL filters without importing Dagster.
IN_FLIGHT: list[str] = ["QUEUED", "NOT_STARTED", "STARTING", "STARTED"]
