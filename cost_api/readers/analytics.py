"""AnalyticsReader: the latest result of each analysis for one customer. Every query reads the
rows of the run `analytics_runs` points at, so a result being written is never half-seen."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any
from urllib.parse import urlencode

from cost_api.params import Period, ProviderChoice, provider_members
from cost_api.readers.clickhouse_reader import ClickHouseReader
from cost_api.schemas.analytics import (
    Anomalies,
    AnomalyPublic,
    BudgetPublic,
    Budgets,
    ForecastPublic,
    Forecasts,
    ResourceAmount,
)
from cost_api.schemas.costs import PeriodPublic

LATEST_RUN_SQL = """
SELECT argMax(run_id, computed_at), max(computed_at), argMax(as_of, computed_at)
FROM analytics_runs
WHERE customer_id = {customer_id:String} AND asset = {asset:String}
HAVING count() > 0
"""
ANOMALIES_SQL = """
SELECT day, provider, ServiceName, currency, actual, expected, lower, upper, deviation, score,
       estimated, lines, top_resources
FROM cost_anomalies
WHERE customer_id = {customer_id:String} AND run_id = {run_id:String}
  AND provider IN {providers:Array(String)} AND day >= {start:Date} AND day < {end:Date}
ORDER BY day DESC, score DESC, provider, ServiceName, currency
"""
FORECASTS_SQL = """
SELECT provider, currency, month, days_complete, days_in_month, actual_to_date, forecast, lower,
       upper, method
FROM cost_forecasts
WHERE customer_id = {customer_id:String} AND run_id = {run_id:String}
  AND provider IN {providers:Array(String)}
ORDER BY provider, currency
"""
BUDGETS_SQL = """
SELECT budget, provider, currency, month, amount, actual, forecast, thresholds, crossed_actual,
       crossed_forecast
FROM budget_status
WHERE customer_id = {customer_id:String} AND run_id = {run_id:String}
ORDER BY budget
"""


def _resource(item: Any) -> ResourceAmount:
    if isinstance(item, Mapping):
        return ResourceAmount(resource_id=item["resource_id"], amount=item["amount"])
    resource_id, amount = item
    return ResourceAmount(resource_id=resource_id, amount=amount)


class AnalyticsReader(ClickHouseReader):
    def _latest(
        self, customer_id: str, asset: str
    ) -> tuple[str, datetime, date] | tuple[None, None, None]:
        rows = self.rows(LATEST_RUN_SQL, {"customer_id": customer_id, "asset": asset})
        if not rows:
            return None, None, None
        run_id, computed_at, as_of = rows[0]
        return str(run_id), computed_at, as_of

    def _rows(
        self, sql: str, run_id: str | None, params: dict[str, Any]
    ) -> Sequence[Sequence[Any]]:
        return [] if run_id is None else self.rows(sql, {**params, "run_id": run_id})

    def anomalies(self, customer_id: str, provider: ProviderChoice, period: Period) -> Anomalies:
        run_id, computed_at, as_of = self._latest(customer_id, "cost_anomalies")
        params = {
            "customer_id": customer_id,
            "providers": provider_members(provider),
            "start": period.start,
            "end": period.end,
        }
        data = []
        for row in self._rows(ANOMALIES_SQL, run_id, params):
            day, prov, service, currency, actual, expected, lower, upper, dev, score = row[:10]
            estimated, lines, resources = row[10:]
            query = urlencode({"start": day.isoformat(), "days": 1})
            data.append(
                AnomalyPublic(
                    day=day,
                    provider=prov,
                    service_name=service,
                    currency=currency,
                    actual=actual,
                    expected=expected,
                    lower=lower,
                    upper=upper,
                    deviation=dev,
                    score=score,
                    estimated=bool(estimated),
                    lines=lines,
                    top_resources=[_resource(item) for item in resources],
                    lines_url=f"/api/v2/costs/{customer_id}/{prov}/metrics?{query}",
                )
            )
        return Anomalies(
            customer_id=customer_id,
            computed_at=computed_at,
            as_of=as_of,
            provider=provider,
            period=PeriodPublic.of(period),
            data=data,
        )

    def forecasts(self, customer_id: str, provider: ProviderChoice) -> Forecasts:
        run_id, computed_at, as_of = self._latest(customer_id, "cost_forecast")
        params = {"customer_id": customer_id, "providers": provider_members(provider)}
        names = list(ForecastPublic.model_fields)
        data = [
            ForecastPublic(**dict(zip(names, row, strict=True)))
            for row in self._rows(FORECASTS_SQL, run_id, params)
        ]
        return Forecasts(
            customer_id=customer_id,
            computed_at=computed_at,
            as_of=as_of,
            provider=provider,
            data=data,
        )

    def budgets(self, customer_id: str) -> Budgets:
        run_id, computed_at, as_of = self._latest(customer_id, "budget_status")
        names = list(BudgetPublic.model_fields)
        data = [
            BudgetPublic(**dict(zip(names, row, strict=True)))
            for row in self._rows(BUDGETS_SQL, run_id, {"customer_id": customer_id})
        ]
        return Budgets(customer_id=customer_id, computed_at=computed_at, as_of=as_of, data=data)
