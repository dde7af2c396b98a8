"""CostReader: every cost read the API serves, one method and one fixed SQL text per read.

Every query reads only `costs_current(customer_id=...)` (and, for the collection time,
`cost_loads` rows of that customer). Values, including the chosen cost column, are bound
server-side; the SQL text never varies with the request.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from clickhouse_connect.driver.client import Client

from cost_api.errors import MetricUnavailable
from cost_api.params import CostMetric, CostQuery, Period, provider_members
from cost_api.readers import shaping
from cost_api.readers.clickhouse_reader import ClickHouseReader
from cost_api.readers.cursor import encode_cursor
from cost_api.schemas.costs import (
    CostLine,
    CostLinesPage,
    CostTrends,
    LatestCosts,
    PeriodPublic,
    ResourceCosts,
    TotalCost,
    TypeCosts,
)

# Columns in the order CostLine lists them, then the period's line count (computed before
# LIMIT); the sort covers every column so pages are deterministic (offset paging).
METRICS_SQL = """
SELECT toDate(ChargePeriodStart) AS day, provider, BillingAccountId, ServiceName, ResourceId,
       RegionId, ChargeCategory, BilledCost, EffectiveCost, ListCost, ContractedCost,
       BillingCurrency, count() OVER () AS total
FROM costs_current(customer_id = {customer_id:String})
WHERE provider IN {providers:Array(String)}
  AND ChargePeriodStart >= {start:DateTime('UTC')} AND ChargePeriodStart < {end:DateTime('UTC')}
ORDER BY day DESC, {metric:Identifier} DESC, provider, BillingAccountId, ServiceName, ResourceId,
         RegionId, ChargeCategory, BillingCurrency, BilledCost, EffectiveCost, ListCost,
         ContractedCost
LIMIT {limit:UInt32} OFFSET {offset:UInt64}
"""

# Only for a page past the end, which has no row to carry the count.
COUNT_SQL = """
SELECT count()
FROM costs_current(customer_id = {customer_id:String})
WHERE provider IN {providers:Array(String)}
  AND ChargePeriodStart >= {start:DateTime('UTC')} AND ChargePeriodStart < {end:DateTime('UTC')}
"""

LATEST_SQL = """
WITH
    (SELECT max(toDate(ChargePeriodStart)) FROM costs_current(customer_id = {customer_id:String})
     WHERE provider IN {providers:Array(String)}) AS latest_day,
    (SELECT max(loaded_at) FROM cost_loads
     WHERE customer_id = {customer_id:String} AND provider IN {providers:Array(String)}
       AND charge_date = latest_day) AS collected_at
SELECT latest_day, collected_at, ServiceName, ResourceId, BillingCurrency,
       sum({metric:Identifier}) AS amount, count() AS lines
FROM costs_current(customer_id = {customer_id:String})
WHERE provider IN {providers:Array(String)} AND toDate(ChargePeriodStart) = latest_day
GROUP BY ServiceName, ResourceId, BillingCurrency
ORDER BY BillingCurrency, amount DESC, ServiceName, ResourceId
"""

DAILY_SQL = """
SELECT toDate(ChargePeriodStart) AS day, BillingCurrency, sum({metric:Identifier})
FROM costs_current(customer_id = {customer_id:String})
WHERE provider IN {providers:Array(String)}
  AND ChargePeriodStart >= {start:DateTime('UTC')} AND ChargePeriodStart < {end:DateTime('UTC')}
GROUP BY day, BillingCurrency
ORDER BY day, BillingCurrency
"""

# Only for a trend over a period without cost: the currencies to state its zeros in.
CURRENCIES_SQL = """
SELECT DISTINCT BillingCurrency
FROM costs_current(customer_id = {customer_id:String})
WHERE provider IN {providers:Array(String)}
ORDER BY BillingCurrency
"""

# Cost without a resource is grouped per service (its own explicit row), so it is never shown
# under whichever service name happened to be the largest string.
BY_RESOURCE_SQL = """
SELECT provider, ResourceId, BillingCurrency, max(ResourceName),
       if(ResourceId = '', unattributed_service, max(ServiceName)),
       sum({metric:Identifier}) AS amount,
       sum(amount) OVER (PARTITION BY BillingCurrency) AS currency_total
FROM costs_current(customer_id = {customer_id:String})
WHERE provider IN {providers:Array(String)}
  AND ChargePeriodStart >= {start:DateTime('UTC')} AND ChargePeriodStart < {end:DateTime('UTC')}
GROUP BY provider, ResourceId, if(ResourceId = '', ServiceName, '') AS unattributed_service,
         BillingCurrency
ORDER BY BillingCurrency, amount DESC, provider, ResourceId, unattributed_service
LIMIT {limit:UInt32} BY BillingCurrency
"""

# Which sources of the requested costs lack the chosen cost column (NULL) in the period.
UNAVAILABLE_SQL = """
SELECT provider, source, count()
FROM costs_current(customer_id = {customer_id:String})
WHERE provider IN {providers:Array(String)}
  AND ChargePeriodStart >= {start:DateTime('UTC')} AND ChargePeriodStart < {end:DateTime('UTC')}
  AND isNull({metric:Identifier})
GROUP BY provider, source
ORDER BY provider, source
"""

BY_TYPE_SQL = """
SELECT BillingCurrency, ServiceCategory, ServiceName, sum({metric:Identifier})
FROM costs_current(customer_id = {customer_id:String})
WHERE provider IN {providers:Array(String)}
  AND ChargePeriodStart >= {start:DateTime('UTC')} AND ChargePeriodStart < {end:DateTime('UTC')}
GROUP BY BillingCurrency, ServiceCategory, ServiceName
"""

TOTAL_SQL = """
SELECT BillingCurrency, sum({metric:Identifier}), count()
FROM costs_current(customer_id = {customer_id:String})
WHERE provider IN {providers:Array(String)}
  AND ChargePeriodStart >= {start:DateTime('UTC')} AND ChargePeriodStart < {end:DateTime('UTC')}
GROUP BY BillingCurrency
ORDER BY BillingCurrency
"""


class CostReader(ClickHouseReader):
    """The costs of one customer and provider (or all), in the chosen FOCUS cost column."""

    def __init__(self, client: Client, query: CostQuery) -> None:
        super().__init__(client)
        self.query = query

    def _scope(self) -> dict[str, Any]:
        return {
            "customer_id": self.query.customer_id,
            "provider": self.query.provider,
            "cost_metric": self.query.metric,
        }

    def _bind(self, period: Period | None = None, **extra: Any) -> dict[str, Any]:
        values: dict[str, Any] = {
            "customer_id": self.query.customer_id,
            "providers": provider_members(self.query.provider),
            "metric": self.query.column,
            **extra,
        }
        if period is not None:
            # Bound as naive UTC text: the placeholder's type carries the zone.
            values["start"] = period.start_time.replace(tzinfo=None)
            values["end"] = period.end_time.replace(tzinfo=None)
        return values

    def get_cost_metrics(self, period: Period, *, limit: int, offset: int) -> CostLinesPage:
        """One page of the period's stored lines, newest day first, biggest first within a day."""
        rows = self.rows(METRICS_SQL, self._bind(period, limit=limit, offset=offset))
        if rows:
            count = int(rows[0][-1])
        else:
            count = int(self.rows(COUNT_SQL, self._bind(period))[0][0]) if offset else 0
        fields = list(CostLine.model_fields)
        data = [CostLine(**dict(zip(fields, row[:-1], strict=True))) for row in rows]
        next_offset = offset + len(data)
        cursor = encode_cursor(self.query, period, next_offset) if next_offset < count else None
        return CostLinesPage(
            **self._scope(),
            period=PeriodPublic.of(period),
            data=data,
            count=count,
            next_cursor=cursor if data else None,
        )

    def require_metric(self, period: Period) -> None:
        """Refuse (422 naming them) when a source in the period does not supply the metric."""
        if self.query.metric is CostMetric.billed:  # required on every line
            return
        missing = self.rows(UNAVAILABLE_SQL, self._bind(period))
        if missing:
            raise MetricUnavailable(
                self.query.metric.value, [(str(p), str(s), int(n)) for p, s, n in missing]
            )

    def get_latest_costs(self) -> LatestCosts:
        """The most recent day with data, by service and resource, and when it was collected."""
        rows = self.rows(LATEST_SQL, self._bind())
        if rows:
            day = rows[0][0]
            self.require_metric(Period(day, day + timedelta(days=1)))
        return shaping.latest(self._scope(), rows)

    def get_cost_trends(self, period: Period, group_by: shaping.Grain) -> CostTrends:
        """Cost per day, ISO week or month bucket, zero-filled, per currency; a period without
        cost is zero in each currency the customer has for the provider in any period."""
        self.require_metric(period)
        rows = self.rows(DAILY_SQL, self._bind(period))
        currencies = [] if rows else [row[0] for row in self.rows(CURRENCIES_SQL, self._bind())]
        return shaping.trends(self._scope(), period, group_by, rows, currencies)

    def get_cost_by_resource(self, period: Period, *, limit: int) -> ResourceCosts:
        """The `limit` most expensive resources of each currency, with their share."""
        self.require_metric(period)
        rows = self.rows(BY_RESOURCE_SQL, self._bind(period, limit=limit))
        return shaping.by_resource(self._scope(), period, rows)

    def get_cost_by_type(self, period: Period) -> TypeCosts:
        """Cost per FOCUS service category with its services, per currency."""
        self.require_metric(period)
        rows = self.rows(BY_TYPE_SQL, self._bind(period))
        return shaping.by_type(self._scope(), period, rows)

    def get_total_cost(self, period: Period) -> TotalCost:
        """The period's total per currency and its number of lines."""
        self.require_metric(period)
        rows = self.rows(TOTAL_SQL, self._bind(period))
        return shaping.total(self._scope(), period, rows)
