"""Alerts: a sensor that posts one JSON event per new finding to the customer's webhook: an
anomaly, a budget threshold reached (or forecast to be), a failed asset check, a pair whose
data went stale, or a restatement above the customer's threshold. Each event is sent once: its
idempotency key goes in the sensor's cursor when the receiver accepts it (2xx); until then it is
retried on later ticks with a doubling backoff.
The webhook URL lives in an environment variable (it often carries a token): it is never in an
event, a log line or the cursor.

No `from __future__ import annotations`: Dagster reads the sensor's annotations at runtime."""

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from clickhouse_connect.driver.client import Client
from dagster import (
    AssetCheckKey,
    AssetKey,
    DagsterInstance,
    DefaultSensorStatus,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from cost_pipelines.customers import CustomerBook
from cost_pipelines.freshness import overdue_pairs
from cost_pipelines.providers import PROVIDERS
from cost_pipelines.resources.clickhouse import ClickHouseResource
from cost_pipelines.resources.customers import CustomersResource
from cost_pipelines.runs import WINDOW_CHECKS
from cost_pipelines.warehouse import ledger

SENSOR = "cost_alerts"
TIMEOUT_S = 5.0
FIRST_RETRY = timedelta(seconds=30)
MAX_RETRY = timedelta(hours=1)
KEEP_SENT = timedelta(days=120)  # longer than any finding stays current
CHECK_HISTORY = 20  # failed executions read per check and tick

_ANOMALIES_SQL = """
SELECT customer_id, provider, ServiceName, currency, day, actual, expected, deviation
FROM cost_anomalies
WHERE customer_id IN {customers:Array(String)}
  AND (customer_id, run_id) IN (SELECT customer_id, argMax(run_id, computed_at)
      FROM analytics_runs WHERE asset = 'cost_anomalies' GROUP BY customer_id)
"""
_BUDGETS_SQL = """
SELECT customer_id, budget, provider, currency, month, amount, actual, forecast,
       crossed_actual, crossed_forecast
FROM budget_status
WHERE customer_id IN {customers:Array(String)}
  AND (customer_id, run_id) IN (SELECT customer_id, argMax(run_id, computed_at)
      FROM analytics_runs WHERE asset = 'budget_status' GROUP BY customer_id)
"""


# Ledger rows looked at per tick: a restatement is told within this long of being recorded.
RESTATEMENT_LOOKBACK = timedelta(days=7)
_RESTATEMENTS_SQL = f"""
SELECT customer_id, {", ".join(ledger.READ_COLUMNS)}
FROM cost_restatements
WHERE customer_id IN {{customers:Array(String)}}
  AND recorded_at >= {{since:DateTime64(6, 'UTC')}} AND delta_BilledCost != 0
ORDER BY recorded_at
"""  # noqa: S608 (constant column names; every value is bound)


@dataclass(frozen=True)
class Event:
    customer_id: str
    kind: str  # anomaly | budget_reached | budget_forecast | check_failed | stale | restatement
    key: str  # the idempotency key: the same finding always has the same key
    details: dict[str, str]

    def body(self) -> dict[str, Any]:
        return {
            "idempotency_key": self.key,
            "customer_id": self.customer_id,
            "type": self.kind,
            **self.details,
        }


def _text(value: Any) -> str:
    return f"{value.normalize():f}" if hasattr(value, "normalize") else str(value)


def warehouse_events(client: Client, customers: list[str]) -> Iterator[Event]:
    """Anomalies and budget thresholds of the latest analyses of these customers."""
    params = {"customers": customers}
    for customer, provider, service, currency, day, actual, expected, deviation in client.query(
        _ANOMALIES_SQL, parameters=params
    ).result_rows:
        key = f"anomaly:{customer}:{provider}:{service}:{currency}:{day}"
        details = {
            "provider": provider,
            "service_name": service,
            "currency": currency,
            "day": str(day),
            "actual": _text(actual),
            "expected": _text(expected),
            "deviation": _text(deviation),
        }
        yield Event(customer, "anomaly", key, details)
    for row in client.query(_BUDGETS_SQL, parameters=params).result_rows:
        customer, budget, provider, currency, month, amount, actual, forecast = row[:8]
        for kind, crossed in (("budget_reached", row[8]), ("budget_forecast", row[9])):
            for threshold in crossed:
                key = f"{kind}:{customer}:{budget}:{month}:{threshold}"
                details = {
                    "budget": budget,
                    "provider": provider,
                    "currency": currency,
                    "month": str(month),
                    "threshold_percent": str(threshold),
                    "amount": _text(amount),
                    "actual": _text(actual),
                    "forecast": _text(forecast),
                }
                yield Event(customer, kind, key, details)


def restatement_events(
    client: Client, book: CustomerBook, customers: list[str], now: datetime
) -> Iterator[Event]:
    """Restatements above each customer's threshold (`restatements` in the customers file)
    recorded in the last RESTATEMENT_LOOKBACK: one event per changed row and load."""
    since = (now - RESTATEMENT_LOOKBACK).astimezone(UTC).replace(tzinfo=None)
    rows = client.query(
        _RESTATEMENTS_SQL, parameters={"customers": customers, "since": since}
    ).result_rows
    by_customer: dict[str, list[ledger.Restatement]] = {}
    for customer, *row in rows:
        by_customer.setdefault(customer, []).append(ledger.from_row(row))
    for customer, restatements in by_customer.items():
        entry = book.customers.get(customer)
        if entry is None:
            continue
        for item in ledger.notable(restatements, entry.restatements):
            key = (
                f"restatement:{customer}:{item.provider}:{item.billing_account_id}:"
                f"{item.charge_date}:{item.service_name}:{item.charge_category}:"
                f"{item.currency}:{item.load_id}"
            )
            details = {
                "provider": item.provider,
                "billing_account_id": item.billing_account_id,
                "day": str(item.charge_date),
                "service_name": item.service_name,
                "charge_category": item.charge_category,
                "currency": item.currency,
                "previous": _text(item.previous["BilledCost"]),
                "new": _text(item.new["BilledCost"]),
                "delta": _text(item.delta["BilledCost"]),
                "recorded_at": item.recorded_at.isoformat(),
                "run_id": item.collection_run_id,
            }
            yield Event(customer, "restatement", key, details)


def instance_events(
    instance: DagsterInstance, book: CustomerBook, now: datetime
) -> Iterator[Event]:
    """Failed window checks of the customers' partitions, and pairs whose data went stale."""
    storage = instance.event_log_storage
    for provider in PROVIDERS:
        for check in WINDOW_CHECKS:
            check_key = AssetCheckKey(AssetKey(f"{provider}_costs"), check)
            records = storage.get_asset_check_execution_history(
                check_key, limit=CHECK_HISTORY, status={AssetCheckExecutionRecordStatus.FAILED}
            )
            for record in records:
                if record.partition in book.customers:
                    yield Event(
                        record.partition,
                        "check_failed",
                        f"check_failed:{record.partition}:{provider}:{check}:{record.id}",
                        {"provider": provider, "check": check, "run_id": record.run_id},
                    )
        for line in overdue_pairs(instance, book, provider, now):
            if "never collected" in line:
                continue  # not stale yet: the schedule's first run is due (the check says so)
            customer = line.split("/", 1)[0]
            # One event per stale episode: the key carries what was last collected.
            key = f"stale:{customer}:{provider}:{line.split(': ', 1)[1].split(',', 1)[0]}"
            yield Event(customer, "stale", key, {"provider": provider, "reason": line})


@dataclass
class Cursor:
    sent: dict[str, str]  # key -> when it was delivered (ISO)
    retry: dict[str, tuple[int, str]]  # key -> (failed attempts, not before ISO)

    @classmethod
    def load(cls, text: str | None) -> "Cursor":
        raw = json.loads(text) if text else {}
        retry = {k: (int(v[0]), str(v[1])) for k, v in raw.get("retry", {}).items()}
        return cls(dict(raw.get("sent", {})), retry)

    def dump(self, now: datetime) -> str:
        oldest = (now - KEEP_SENT).isoformat()
        sent = {k: v for k, v in self.sent.items() if v >= oldest}
        return json.dumps({"sent": sent, "retry": self.retry}, sort_keys=True)


Post = Callable[[str, dict[str, Any], str], bool]


def http_post(url: str, body: dict[str, Any], key: str) -> bool:
    """POST the event; True when the receiver took it (2xx). Never raises, never logs the URL."""
    try:
        answer = httpx.post(url, json=body, headers={"Idempotency-Key": key}, timeout=TIMEOUT_S)
    except httpx.HTTPError:
        return False
    return answer.is_success


def deliver(
    events: list[Event], book: CustomerBook, cursor: Cursor, now: datetime, post: Post = http_post
) -> tuple[list[str], list[str]]:
    """Send every event not sent yet and not waiting for its retry time; (sent, failed) keys."""
    sent, failed = [], []
    for event in events:
        if event.key in cursor.sent:
            continue
        attempts, not_before = cursor.retry.get(event.key, (0, ""))
        if not_before and now.isoformat() < not_before:
            continue
        customer = book.customers.get(event.customer_id)
        url = (
            os.environ.get(customer.alerts.webhook_url_env, "")
            if customer and customer.alerts
            else ""
        )
        if url and post(url, event.body(), event.key):
            cursor.sent[event.key] = now.isoformat()
            cursor.retry.pop(event.key, None)
            sent.append(event.key)
        else:
            wait = min(MAX_RETRY, FIRST_RETRY * 2**attempts)
            cursor.retry[event.key] = (attempts + 1, (now + wait).isoformat())
            failed.append(event.key)
    return sent, failed


def alert_tick(
    instance: DagsterInstance,
    client: Client,
    book: CustomerBook,
    cursor_text: str | None,
    now: datetime,
    post: Post = http_post,
) -> tuple[str, list[str], list[str]]:
    """One evaluation: the new cursor and the keys sent and failed."""
    alerted = sorted(c for c, customer in book.customers.items() if customer.alerts)
    cursor = Cursor.load(cursor_text)
    if not alerted:
        return cursor.dump(now), [], []
    events = [
        *warehouse_events(client, alerted),
        *restatement_events(client, book, alerted, now),
        *instance_events(instance, book, now),
    ]
    events = [e for e in events if e.customer_id in alerted]
    sent, failed = deliver(events, book, cursor, now, post)
    return cursor.dump(now), sent, failed


def alerts_sensor() -> SensorDefinition:
    @sensor(
        name=SENSOR,
        minimum_interval_seconds=60,
        default_status=DefaultSensorStatus.RUNNING,
        description="Posts each new anomaly, budget threshold, failed check, stale pair and "
        "restatement above the customer's threshold once to the customer's webhook "
        "(alerts.webhook_url_env), retrying with backoff",
    )
    def cost_alerts(
        context: SensorEvaluationContext,
        warehouse: ClickHouseResource,
        customers: CustomersResource,
    ) -> SensorResult:
        cursor, sent, failed = alert_tick(
            context.instance,
            warehouse.get_client(),
            customers.load(),
            context.cursor,
            datetime.now(UTC),
        )
        if failed:
            context.log.warning(f"{len(failed)} alert events not delivered; retried later")
        message = f"{len(sent)} alert events sent, {len(failed)} to retry"
        return SensorResult(skip_reason=SkipReason(message), cursor=cursor)

    return cost_alerts
