"""`cost_recommendations`: our own recommendations from the customer's current stored lines,
each with the lines or figures behind it. Over the complete days before today:

- idle_resource: a resource that cost something on each of the last `idle_days` days while
  either every usage line of it carried a zero quantity (PricingQuantity 0: billed capacity
  nothing consumed, e.g. an unused address), or it had compute lines (Compute usage priced by
  the hour) in the 30 days before and none since (a stopped machine whose disk still bills).
  Saving: its cost over those days x 30 / idle_days.
- low_commitment_utilisation: a commitment whose recurring fee lines (x_ChargeType RIFee or
  SavingsPlanRecurringFee: Cost Explorer puts the unused part of the commitment in their
  EffectiveCost) show it used less than `min_utilisation` over the last `utilisation_days`.
  Utilisation = 1 - unused / fee; saving: unused x 30 / the days with fee lines.
- growing_service: a service whose cost grew faster than the customer's total in its currency
  by more than `growth_margin` in each of the last `growth_weeks` weeks (7-day blocks ending
  yesterday). Only providers stored on every day of those weeks count (a first collection's
  shorter window would look like growth). Saving: what it costs beyond growing like the total,
  (S_last - S_first x T_last / T_first) x 30 / 7.
Recommendations saving less than `min_monthly_saving` a month are left out."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from clickhouse_connect.driver.client import Client

from cost_pipelines.assets.recommendations.model import Recommendation
from cost_pipelines.customers import RecommendationSettings

SOURCE = "cost_pipelines"
MONTH_DAYS = Decimal(30)
WEEK_DAYS = 7
COMPUTE_LOOKBACK_DAYS = 30
COMMITMENT_FEES = ("RIFee", "SavingsPlanRecurringFee")

EVIDENCE_LINES = 60  # the evidence's line summaries per recommendation, newest first

# Compute, in both queries below: Compute usage priced by the hour (a VM's disk, billed per
# GB-month, is not machine time even where the source files it under a compute service).
_RESOURCES_SQL = """
SELECT provider, ResourceId, BillingCurrency, sum(BilledCost),
       uniqExact(toDate(ChargePeriodStart)),
       countIf(ChargeCategory = 'Usage' AND PricingQuantity IS NOT NULL),
       maxIf(abs(PricingQuantity), ChargeCategory = 'Usage'),
       countIf(ServiceCategory = 'Compute' AND ChargeCategory = 'Usage'
               AND (positionCaseInsensitive(PricingUnit, 'hour') > 0 OR PricingUnit = 'Hrs'))
FROM costs_current(customer_id = {customer_id:String})
WHERE ChargePeriodStart >= {start:DateTime('UTC')} AND ChargePeriodStart < {end:DateTime('UTC')}
  AND ResourceId != ''
GROUP BY provider, ResourceId, BillingCurrency
HAVING sum(BilledCost) > 0
ORDER BY provider, ResourceId, BillingCurrency
"""
_COMPUTE_BEFORE_SQL = """
SELECT provider, ResourceId, max(toDate(ChargePeriodStart))
FROM costs_current(customer_id = {customer_id:String})
WHERE ChargePeriodStart >= {start:DateTime('UTC')} AND ChargePeriodStart < {end:DateTime('UTC')}
  AND ResourceId != '' AND ServiceCategory = 'Compute' AND ChargeCategory = 'Usage'
  AND (positionCaseInsensitive(PricingUnit, 'hour') > 0 OR PricingUnit = 'Hrs')
GROUP BY provider, ResourceId
"""
_RESOURCE_LINES_SQL = """
SELECT toDate(ChargePeriodStart) AS day, ServiceName, ServiceCategory, ChargeCategory, SkuId,
       sum(PricingQuantity), sum(BilledCost)
FROM costs_current(customer_id = {customer_id:String})
WHERE ChargePeriodStart >= {start:DateTime('UTC')} AND ChargePeriodStart < {end:DateTime('UTC')}
  AND provider = {provider:String} AND ResourceId = {resource:String}
GROUP BY day, ServiceName, ServiceCategory, ChargeCategory, SkuId
ORDER BY day DESC, ServiceName, SkuId, ChargeCategory
LIMIT {limit:UInt32}
"""
_COMMITMENTS_SQL = """
SELECT provider, BillingCurrency, SubAccountId, ServiceName, x_ChargeType,
       toDate(ChargePeriodStart) AS day, sum(BilledCost), sum(ifNull(EffectiveCost, 0))
FROM costs_current(customer_id = {customer_id:String})
WHERE ChargePeriodStart >= {start:DateTime('UTC')} AND ChargePeriodStart < {end:DateTime('UTC')}
  AND x_ChargeType IN {fees:Array(String)} AND EffectiveCost IS NOT NULL
GROUP BY provider, BillingCurrency, SubAccountId, ServiceName, x_ChargeType, day
ORDER BY provider, BillingCurrency, SubAccountId, ServiceName, x_ChargeType, day
"""
_COVERED_SQL = """
SELECT provider, BillingCurrency, uniqExact(toDate(ChargePeriodStart))
FROM costs_current(customer_id = {customer_id:String})
WHERE ChargePeriodStart >= {start:DateTime('UTC')} AND ChargePeriodStart < {end:DateTime('UTC')}
GROUP BY provider, BillingCurrency
"""
_WEEKLY_SQL = """
SELECT provider, ServiceName, BillingCurrency,
       intDiv(dateDiff('day', toDate(ChargePeriodStart), {end_day:Date}) - 1, 7) AS weeks_ago,
       sum(BilledCost)
FROM costs_current(customer_id = {customer_id:String})
WHERE ChargePeriodStart >= {start:DateTime('UTC')} AND ChargePeriodStart < {end:DateTime('UTC')}
GROUP BY provider, ServiceName, BillingCurrency, weeks_ago
"""


def _at(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time())


@dataclass(frozen=True)
class Rules:
    """The thresholds of one customer (the customers file, or its defaults)."""

    settings: RecommendationSettings
    today: date

    @property
    def idle_start(self) -> date:
        return self.today - timedelta(days=self.settings.idle_days)


def _resource_lines(
    client: Client, customer_id: str, provider: str, resource: str, start: date, end: date
) -> list[dict[str, Any]]:
    params = {
        "customer_id": customer_id,
        "provider": provider,
        "resource": resource,
        "start": _at(start),
        "end": _at(end),
        "limit": EVIDENCE_LINES,
    }
    rows = client.query(_RESOURCE_LINES_SQL, parameters=params).result_rows
    return [
        {
            "day": day.isoformat(),
            "service_name": service,
            "service_category": category,
            "charge_category": charge,
            "sku_id": sku,
            "quantity": quantity,
            "billed_cost": cost,
        }
        for day, service, category, charge, sku, quantity, cost in rows
    ]


def idle_resources(client: Client, customer_id: str, rules: Rules) -> list[Recommendation]:
    """Resources that kept costing without usage or without compute (see the module)."""
    days = rules.settings.idle_days
    start, end = rules.idle_start, rules.today
    params = {"customer_id": customer_id, "start": _at(start), "end": _at(end)}
    rows = client.query(_RESOURCES_SQL, parameters=params).result_rows
    before = {
        "customer_id": customer_id,
        "start": _at(start - timedelta(days=COMPUTE_LOOKBACK_DAYS)),
        "end": _at(start),
    }
    computed = {
        (str(p), str(r)): last
        for p, r, last in client.query(_COMPUTE_BEFORE_SQL, parameters=before).result_rows
    }
    found = []
    for provider, resource, currency, cost, cost_days, known, max_quantity, compute in rows:
        if cost_days < days:
            continue
        zero_usage = known > 0 and max_quantity is not None and Decimal(max_quantity) == 0
        last_compute = computed.get((provider, resource))
        stopped = compute == 0 and last_compute is not None
        if not (zero_usage or stopped):
            continue
        reason = (
            f"every usage line of the last {days} days has a zero quantity"
            if zero_usage
            else f"no compute since {last_compute}, still billed for the last {days} days"
        )
        found.append(
            Recommendation(
                key=f"{provider}:idle_resource:{resource}:{currency}",
                provider=provider,
                kind="idle_resource",
                source=SOURCE,
                source_id=f"idle:{resource}",
                scope=resource,
                resource_id=resource,
                currency=currency,
                monthly_saving=Decimal(cost) * MONTH_DAYS / days,
                lookback=f"{days} days",
                evidence={
                    "rule": "zero_usage" if zero_usage else "no_compute",
                    "reason": reason,
                    "period": {"start": start.isoformat(), "end": end.isoformat()},
                    "billed_cost": Decimal(cost),
                    "last_compute_day": None if last_compute is None else last_compute.isoformat(),
                    "lines": _resource_lines(client, customer_id, provider, resource, start, end),
                },
            )
        )
    return found


def low_utilisation(client: Client, customer_id: str, rules: Rules) -> list[Recommendation]:
    """Commitments whose fee lines show less use than `min_utilisation` (see the module)."""
    start = rules.today - timedelta(days=rules.settings.utilisation_days)
    params = {
        "customer_id": customer_id,
        "start": _at(start),
        "end": _at(rules.today),
        "fees": list(COMMITMENT_FEES),
    }
    per: dict[tuple[str, str, str, str, str], list[tuple[date, Decimal, Decimal]]] = defaultdict(
        list
    )
    for provider, currency, sub, service, fee_type, day, fee, unused in client.query(
        _COMMITMENTS_SQL, parameters=params
    ).result_rows:
        per[(provider, currency, sub, service, fee_type)].append(
            (day, Decimal(fee), Decimal(unused))
        )
    found = []
    for (provider, currency, sub, service, fee_type), days in per.items():
        fee = sum((f for _, f, _ in days), Decimal(0))
        unused = sum((u for _, _, u in days), Decimal(0))
        if fee <= 0:
            continue
        utilisation = 1 - unused / fee
        if utilisation >= rules.settings.min_utilisation:
            continue
        found.append(
            Recommendation(
                key=f"{provider}:low_commitment_utilisation:{sub}:{service}:{fee_type}:{currency}",
                provider=provider,
                kind="low_commitment_utilisation",
                source=SOURCE,
                source_id=f"utilisation:{sub}:{service}:{fee_type}",
                scope=sub,
                resource_id=service,
                currency=currency,
                monthly_saving=unused * MONTH_DAYS / len(days),
                lookback=f"{rules.settings.utilisation_days} days",
                evidence={
                    "charge_type": fee_type,
                    "fee": fee,
                    "unused": unused,
                    "utilisation": utilisation,
                    "threshold": rules.settings.min_utilisation,
                    "days": [
                        {"day": d.isoformat(), "fee": f, "unused": u}
                        for d, f, u in sorted(days, reverse=True)
                    ],
                },
            )
        )
    return found


def growing_services(client: Client, customer_id: str, rules: Rules) -> list[Recommendation]:
    """Services that outgrew the customer's total week after week (see the module)."""
    weeks = rules.settings.growth_weeks
    start = rules.today - timedelta(days=WEEK_DAYS * (weeks + 1))
    params = {
        "customer_id": customer_id,
        "start": _at(start),
        "end": _at(rules.today),
        "end_day": rules.today,
    }
    span = WEEK_DAYS * (weeks + 1)
    covered = {
        (str(p), str(c))
        for p, c, stored_days in client.query(_COVERED_SQL, parameters=params).result_rows
        if stored_days == span
    }
    services: dict[tuple[str, str, str], dict[int, Decimal]] = defaultdict(dict)
    totals: dict[str, dict[int, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for provider, service, currency, weeks_ago, cost in client.query(
        _WEEKLY_SQL, parameters=params
    ).result_rows:
        if (provider, currency) not in covered:  # not stored for every day: no growth to read
            continue
        services[(provider, service, currency)][weeks_ago] = Decimal(cost)
        totals[currency][weeks_ago] += Decimal(cost)
    found = []
    order = list(range(weeks, -1, -1))  # weeks ago: oldest first
    for (provider, service, currency), by_week in sorted(services.items()):
        series = [by_week.get(w, Decimal(0)) for w in order]
        total = [totals[currency].get(w, Decimal(0)) for w in order]
        if any(v <= 0 for v in series) or any(v <= 0 for v in total):
            continue
        faster = all(
            series[k] / series[k - 1] - total[k] / total[k - 1] > rules.settings.growth_margin
            for k in range(1, len(series))
        )
        if not faster:
            continue
        excess = series[-1] - series[0] * total[-1] / total[0]
        found.append(
            Recommendation(
                key=f"{provider}:growing_service:{service}:{currency}",
                provider=provider,
                kind="growing_service",
                source=SOURCE,
                source_id=f"growth:{service}",
                scope=service,
                currency=currency,
                monthly_saving=excess * MONTH_DAYS / WEEK_DAYS,
                lookback=f"{weeks} weeks",
                evidence={
                    "weeks": [
                        {
                            "start": (
                                rules.today - timedelta(days=WEEK_DAYS * (w + 1))
                            ).isoformat(),
                            "service_cost": s,
                            "total_cost": t,
                        }
                        for w, s, t in zip(order, series, total, strict=True)
                    ],
                    "margin": rules.settings.growth_margin,
                },
            )
        )
    return found


def own_recommendations(
    client: Client, customer_id: str, settings: RecommendationSettings, today: date
) -> list[Recommendation]:
    """Every rule's recommendations that save at least `min_monthly_saving` a month."""
    rules = Rules(settings, today)
    found = [
        *idle_resources(client, customer_id, rules),
        *low_utilisation(client, customer_id, rules),
        *growing_services(client, customer_id, rules),
    ]
    return [r for r in found if r.monthly_saving >= settings.min_monthly_saving]
