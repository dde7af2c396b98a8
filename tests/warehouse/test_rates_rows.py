"""Which stored exchange-rate rows a converted read uses."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from clickhouse_connect.driver.client import Client

from cost_api.params import CostMetric, CostQuery
from cost_api.readers.conversion import ConversionRequest
from cost_api.readers.cost_reader import CostReader
from tests.warehouse.test_resource_keys import PERIOD, START, _write


def test_a_stored_rate_of_the_base_against_itself_does_not_count_lines_twice(
    client: Client,
) -> None:
    _write(client, "base-rate", [("bucket", "S3", "EUR", "3"), ("vm", "EC2", "USD", "5")])
    rates = [("USD", "1.25"), ("EUR", "1")]  # EUR per EUR: what a hand-made rates file may hold
    client.insert(
        "exchange_rates",
        [
            [START + timedelta(days=d), "EUR", c, Decimal(r), "test"]
            for d in range(7)
            for c, r in rates
        ],
        column_names=["rate_date", "base", "currency", "rate", "source"],
    )
    for target, expected in (("USD", "8.750000000000"), ("EUR", "7.000000000000")):
        query = CostQuery("base-rate", "all", CostMetric.billed)
        reader = CostReader(client, query, ConversionRequest(target))
        [total] = reader.get_total_cost(PERIOD).totals
        assert (total.currency, str(total.amount)) == (target, expected)
        resources = CostReader(client, query, ConversionRequest(target))
        amounts = sorted(
            str(r.amount) for r in resources.get_cost_by_resource(PERIOD, limit=5).data
        )
        assert sum(Decimal(a) for a in amounts) == Decimal(expected)
