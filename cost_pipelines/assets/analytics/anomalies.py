"""`cost_anomalies`: per customer, the days of the last weeks whose cost per provider, service and
currency left its weekday-adjusted band, with the resources that cost most on that day."""

from datetime import date, timedelta

from clickhouse_connect.driver.client import Client
from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    MaterializeResult,
    MetadataValue,
    PartitionsDefinition,
)

from cost_pipelines.assets.analytics.detect import Anomaly, Rule, detect
from cost_pipelines.assets.analytics.series import money, read_daily
from cost_pipelines.assets.analytics.store import (
    AnalysisConfig,
    analysis_asset,
    analysis_day,
    publish,
)
from cost_pipelines.warehouse.schema import ANOMALIES_TABLE

ASSET = "cost_anomalies"
EVALUATED_DAYS = 35  # the days judged on every run (each against the eight weeks before it)
TOP_RESOURCES = 5
DETAILED = 100  # anomalies that get their top resources (the count says how many were found)
MARKDOWN_ROWS = 10
COLUMNS = (
    "provider",
    "ServiceName",
    "currency",
    "day",
    "actual",
    "expected",
    "lower",
    "upper",
    "deviation",
    "score",
    "estimated",
    "lines",
    "top_resources",
)
_RESOURCES_SQL = """
SELECT ResourceId, sum(BilledCost) AS amount
FROM costs_current(customer_id = {customer_id:String})
WHERE provider = {provider:String} AND ServiceName = {service:String}
  AND BillingCurrency = {currency:String} AND toDate(ChargePeriodStart) = {day:Date}
GROUP BY ResourceId
ORDER BY amount DESC, ResourceId
LIMIT {limit:UInt32}
"""


DEFAULT_RULE = Rule()


def find_anomalies(
    client: Client, customer_id: str, today: date, rule: Rule = DEFAULT_RULE
) -> list[Anomaly]:
    """Every anomaly of the customer among the EVALUATED_DAYS complete days before `today`."""
    first = today - timedelta(days=EVALUATED_DAYS)
    history_from = first - timedelta(days=rule.window_days)
    evaluate = [first + timedelta(days=i) for i in range(EVALUATED_DAYS)]
    found = []
    for key, days in read_daily(client, customer_id, history_from, today).items():
        found.extend(detect(key, days, evaluate, rule))
    return sorted(found, key=lambda a: (-a.score, a.day, a.provider, a.service))


def top_resources(client: Client, customer_id: str, anomaly: Anomaly) -> list[tuple[str, object]]:
    params = {
        "customer_id": customer_id,
        "provider": anomaly.provider,
        "service": anomaly.service,
        "currency": anomaly.currency,
        "day": anomaly.day,
        "limit": TOP_RESOURCES,
    }
    rows = client.query(_RESOURCES_SQL, parameters=params).result_rows
    return [(str(resource), amount) for resource, amount in rows]


def markdown(anomalies: list[Anomaly]) -> str:
    if not anomalies:
        return "No anomalies in the last days."
    head = "| day | provider | service | actual | expected | deviation |\n|---|---|---|---|---|---|"
    rows = [
        f"| {a.day} | {a.provider} | {a.service} | {a.actual.normalize():f} {a.currency} | "
        f"{a.expected.normalize():f} | {a.deviation.normalize():+f} |"
        for a in anomalies[:MARKDOWN_ROWS]
    ]
    return "\n".join([head, *rows])


def build_anomalies_asset(partitions: PartitionsDefinition) -> AssetsDefinition:
    @analysis_asset(
        ASSET,
        partitions,
        "Days whose cost per provider, service and currency left the band of its "
        "recent weekday-adjusted level (median +- 3.5 x 1.4826 x MAD, at least 25%)",
    )
    def cost_anomalies(context: AssetExecutionContext, config: AnalysisConfig) -> MaterializeResult:  # type: ignore[type-arg]
        customer_id = context.partition_key
        today = analysis_day(config)
        client = context.resources.warehouse.get_client()
        anomalies = find_anomalies(client, customer_id, today)
        rows = []
        for index, a in enumerate(anomalies):
            resources = top_resources(client, customer_id, a) if index < DETAILED else []
            rows.append(
                [
                    a.provider,
                    a.service,
                    a.currency,
                    a.day,
                    money(a.actual),
                    a.expected,
                    a.lower,
                    a.upper,
                    money(a.deviation),
                    min(a.score, 1e9),
                    a.estimated,
                    a.lines,
                    resources,
                ]
            )
        publish(
            client,
            table=ANOMALIES_TABLE,
            asset=ASSET,
            customer_id=customer_id,
            as_of=today,
            columns=COLUMNS,
            rows=rows,
        )
        return MaterializeResult(
            metadata={
                "anomalies": MetadataValue.int(len(anomalies)),
                "top_anomalies": MetadataValue.md(markdown(anomalies)),
                "today": MetadataValue.text(today.isoformat()),
            }
        )

    return cost_anomalies
