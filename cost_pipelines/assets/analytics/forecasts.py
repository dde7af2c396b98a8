"""`cost_forecast`: per customer, the month-end total per provider and currency with an
interval (see forecast.py for the method), and the month's forecast next to its budgets."""

from datetime import date, timedelta
from typing import Any

from clickhouse_connect.driver.client import Client
from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    MaterializeResult,
    MetadataValue,
    PartitionsDefinition,
)

from cost_pipelines.assets.analytics.forecast import (
    BACKTEST_MONTHS,
    METHOD,
    Forecast,
    month_end_forecast,
)
from cost_pipelines.assets.analytics.series import by_provider_and_currency, money, read_daily
from cost_pipelines.assets.analytics.store import (
    AnalysisConfig,
    analysis_asset,
    analysis_day,
    publish,
)
from cost_pipelines.warehouse.schema import FORECASTS_TABLE

ASSET = "cost_forecast"
# Eight weeks of window before each of the backtested months.
HISTORY_DAYS = 31 * (BACKTEST_MONTHS + 1) + 56
COLUMNS = (
    "provider",
    "currency",
    "month",
    "as_of",
    "days_complete",
    "days_in_month",
    "actual_to_date",
    "forecast",
    "lower",
    "upper",
    "method",
)


def forecasts(client: Client, customer_id: str, today: date) -> dict[tuple[str, str], Forecast]:
    """The month-end forecast of every provider and currency with two weeks of history."""
    daily = read_daily(client, customer_id, today - timedelta(days=HISTORY_DAYS), today)
    out = {}
    for key, history in by_provider_and_currency(daily).items():
        result = month_end_forecast(history, today)
        if result is not None:
            out[key] = result
    return out


def markdown(found: dict[tuple[str, str], Forecast]) -> str:
    if not found:
        return "No forecast yet: fewer than 14 days of history."
    head = "| provider | currency | to date | forecast | interval |\n|---|---|---|---|---|"
    rows = [
        f"| {provider} | {currency} | {f.actual_to_date.normalize():f} | "
        f"{f.forecast.normalize():f} | {f.lower.normalize():f} .. {f.upper.normalize():f} |"
        for (provider, currency), f in found.items()
    ]
    return "\n".join([head, *rows])


def build_forecast_asset(partitions: PartitionsDefinition) -> AssetsDefinition:
    @analysis_asset(
        ASSET,
        partitions,
        "Month-end cost per provider and currency: the complete days so far plus "
        "each remaining day at the weekday-adjusted recent level, with a backtested interval",
    )
    def cost_forecast(context: AssetExecutionContext, config: AnalysisConfig) -> MaterializeResult:  # type: ignore[type-arg]
        customer_id = context.partition_key
        today = analysis_day(config)
        client = context.resources.warehouse.get_client()
        found = forecasts(client, customer_id, today)
        rows = [
            [
                provider,
                currency,
                f.month,
                f.as_of,
                f.days_complete,
                f.days_in_month,
                money(f.actual_to_date),
                f.forecast,
                f.lower,
                f.upper,
                METHOD,
            ]
            for (provider, currency), f in found.items()
        ]
        publish(
            client,
            table=FORECASTS_TABLE,
            asset=ASSET,
            customer_id=customer_id,
            as_of=today,
            columns=COLUMNS,
            rows=rows,
        )
        metadata: dict[str, MetadataValue[Any]] = {
            "forecasts": MetadataValue.int(len(found)),
            "forecast_table": MetadataValue.md(markdown(found)),
            "today": MetadataValue.text(today.isoformat()),
        }
        for (provider, currency), f in found.items():
            metadata[f"forecast_{provider}_{currency}"] = MetadataValue.float(float(f.forecast))
        return MaterializeResult(metadata=metadata)

    return cost_forecast
