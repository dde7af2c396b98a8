"""Each period read of the API, reduced to a few figures that tell the sets of the read race
test apart (tests/warehouse/test_read_race.py; its reader process imports this too)."""

from __future__ import annotations

from datetime import date
from typing import Any

from clickhouse_connect.driver.client import Client

from cost_api.params import CostMetric, CostQuery, Period
from cost_api.readers.cost_reader import CostReader
from cost_api.readers.trends import Grain

PERIOD = Period(date(2026, 10, 1), date(2026, 10, 31))


def figures(client: Client, customer: str) -> dict[str, Any]:
    """What total, trends, by type, by resource, a metrics page (for the customer's AWS costs of
    October 2026) and latest answer, each read with its own reader, as each request has."""

    def reader() -> CostReader:
        return CostReader(client, CostQuery(customer, "aws", CostMetric.billed))

    total = reader().get_total_cost(PERIOD)
    trends = reader().get_cost_trends(PERIOD, Grain.day)
    by_type = reader().get_cost_by_type(PERIOD)
    by_resource = reader().get_cost_by_resource(PERIOD, limit=100_000)
    page = reader().get_cost_metrics(PERIOD, limit=50)
    latest = reader().get_latest_costs()
    return {
        "total": [total.lines, [str(t.amount) for t in total.totals]],
        "trends": [
            [str(p.bucket), str(p.amount)] for s in trends.series for p in s.points if p.amount
        ],
        "by_type": [str(t.amount) for t in by_type.totals],
        "by_resource": [len(by_resource.data), [str(t.amount) for t in by_resource.totals]],
        "metrics_count": page.count,
        "metrics_page": sorted({str(line.billed_cost) for line in page.data}),
        "latest": [
            [str(p.day), len(p.items), [str(t.amount) for t in p.totals]] for p in latest.providers
        ],
    }
