"""`budget_status`: per customer, each monthly budget of the customers file against the month's
cost so far and its month-end forecast, and which alert thresholds each has reached."""

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from clickhouse_connect.driver.client import Client
from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    MaterializeResult,
    MetadataValue,
    PartitionsDefinition,
)

from cost_pipelines.assets.analytics.forecast import month_bounds
from cost_pipelines.assets.analytics.forecasts import ASSET as FORECAST_ASSET
from cost_pipelines.assets.analytics.series import money
from cost_pipelines.assets.analytics.store import (
    AnalysisConfig,
    analysis_asset,
    analysis_day,
    publish,
)
from cost_pipelines.customers import Budget
from cost_pipelines.warehouse.schema import BUDGETS_TABLE

ASSET = "budget_status"
COLUMNS = (
    "budget",
    "provider",
    "currency",
    "month",
    "amount",
    "actual",
    "forecast",
    "thresholds",
    "crossed_actual",
    "crossed_forecast",
)
_MONTH_SQL = """
SELECT provider, BillingCurrency, sum(BilledCost)
FROM costs_current(customer_id = {customer_id:String})
WHERE ChargePeriodStart >= {start:DateTime('UTC')} AND ChargePeriodStart < {end:DateTime('UTC')}
GROUP BY provider, BillingCurrency
"""
_FORECAST_SQL = """
SELECT provider, currency, forecast
FROM cost_forecasts
WHERE customer_id = {customer_id:String} AND month = {month:Date}
  AND run_id = (SELECT argMax(run_id, computed_at) FROM analytics_runs
                WHERE customer_id = {customer_id:String} AND asset = {asset:String})
"""

Amounts = dict[tuple[str, str], Decimal]


@dataclass(frozen=True)
class BudgetStatus:
    budget: Budget
    month: date
    actual: Decimal
    forecast: Decimal

    @property
    def crossed_actual(self) -> list[int]:
        return [t for t in self.budget.thresholds if self.actual * 100 >= self.budget.amount * t]

    @property
    def crossed_forecast(self) -> list[int]:
        return [t for t in self.budget.thresholds if self.forecast * 100 >= self.budget.amount * t]


def month_amounts(client: Client, customer_id: str, today: date) -> tuple[Amounts, Amounts]:
    """The month's stored cost (today's so far included) and the latest month-end forecasts,
    per provider and currency."""
    first, following = month_bounds(today)
    params = {
        "customer_id": customer_id,
        "start": datetime.combine(first, datetime.min.time()),
        "end": datetime.combine(following, datetime.min.time()),
    }
    actual = {
        (str(p), str(c)): Decimal(v)
        for p, c, v in client.query(_MONTH_SQL, parameters=params).result_rows
    }
    params = {"customer_id": customer_id, "month": first, "asset": FORECAST_ASSET}
    forecast = {
        (str(p), str(c)): Decimal(v)
        for p, c, v in client.query(_FORECAST_SQL, parameters=params).result_rows
    }
    return actual, forecast


def statuses(
    budgets: tuple[Budget, ...], month: date, actual: Amounts, forecast: Amounts
) -> list[BudgetStatus]:
    """Each budget summed over its providers; a provider without a forecast (too little history)
    counts with its cost so far."""
    out = []
    for budget in budgets:
        spent: dict[str, Decimal] = defaultdict(Decimal)
        expected: dict[str, Decimal] = defaultdict(Decimal)
        for key in set(actual) | set(forecast):
            provider, currency = key
            if currency != budget.currency or budget.provider not in (None, provider):
                continue
            spent[currency] += actual.get(key, Decimal(0))
            expected[currency] += forecast.get(key, actual.get(key, Decimal(0)))
        out.append(BudgetStatus(budget, month, spent[budget.currency], expected[budget.currency]))
    return out


def markdown(found: list[BudgetStatus]) -> str:
    if not found:
        return "No budgets in the customers file for this customer."
    head = "| budget | amount | actual | forecast | reached | forecast to reach |\n" + "|---" * 6
    rows = [
        f"| {s.budget.id} | {s.budget.amount.normalize():f} {s.budget.currency} | "
        f"{s.actual.normalize():f} | {s.forecast.normalize():f} | "
        f"{', '.join(f'{t}%' for t in s.crossed_actual) or '-'} | "
        f"{', '.join(f'{t}%' for t in s.crossed_forecast) or '-'} |"
        for s in found
    ]
    return "\n".join([head + "|", *rows])


def build_budget_asset(partitions: PartitionsDefinition) -> AssetsDefinition:
    @analysis_asset(
        ASSET,
        partitions,
        "Each monthly budget against the month's cost so far and its forecast, "
        "with the thresholds (50/80/100% unless configured) each has reached",
        deps=[AssetKey(FORECAST_ASSET)],
        resources=frozenset({"warehouse", "customers"}),
    )
    def budget_status(context: AssetExecutionContext, config: AnalysisConfig) -> MaterializeResult:  # type: ignore[type-arg]
        customer_id = context.partition_key
        today = analysis_day(config)
        customer = context.resources.customers.load().customers.get(customer_id)
        budgets = customer.budgets if customer else ()
        client = context.resources.warehouse.get_client()
        actual, forecast = month_amounts(client, customer_id, today)
        found = statuses(budgets, month_bounds(today)[0], actual, forecast)
        rows = [
            [
                s.budget.id,
                s.budget.provider or "all",
                s.budget.currency,
                s.month,
                money(s.budget.amount),
                money(s.actual),
                money(s.forecast),
                list(s.budget.thresholds),
                s.crossed_actual,
                s.crossed_forecast,
            ]
            for s in found
        ]
        publish(
            client,
            table=BUDGETS_TABLE,
            asset=ASSET,
            customer_id=customer_id,
            as_of=today,
            columns=COLUMNS,
            rows=rows,
        )
        return MaterializeResult(
            metadata={
                "budgets": MetadataValue.int(len(found)),
                "forecast_vs_budget": MetadataValue.md(markdown(found)),
                "over_budget_forecast": MetadataValue.int(
                    sum(1 for s in found if s.forecast > s.budget.amount)
                ),
            }
        )

    return budget_status
