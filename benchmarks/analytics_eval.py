"""Anomaly precision/recall on labelled synthetic years and the month-end forecast's backtest error
on the demo's year, from the sandbox's own bill generator (no warehouse: the same pure functions
the assets run, over the generated lines summed per day).

    python -m benchmarks.analytics_eval [--accounts N]

Anomalies: N customers' generated years (four providers each, one spike per billing account on
its costliest product, the tax that follows it). A detection is true when it is a spiked series
(the costliest product's service, or Tax) on the account's spike day. Every day after the first
eight weeks is judged from the days before it only.

Forecast: for the demo customer's year, a forecast as of days 1, 8, 15, 22 and 28 of every month
with eight weeks of history before it, against the month's generated total; MAPE and the share of
months whose total fell inside the interval."""

from __future__ import annotations

import argparse
from collections import defaultdict
from collections.abc import Iterable
from datetime import date, timedelta
from decimal import Decimal
from statistics import mean

from cost_local.sandbox import demo
from cost_local.sandbox.bills import GeneratedLine, generate_bills, spike_day
from cost_local.sandbox.catalog import PRODUCTS, demo_accounts
from cost_pipelines.assets.analytics.detect import detect
from cost_pipelines.assets.analytics.forecast import month_end_forecast
from cost_pipelines.assets.analytics.series import DayCost, SeriesKey, by_provider_and_currency

START, END = date(2025, 1, 1), date(2026, 1, 1)
SEED = 7
WARM_UP = timedelta(days=56)


def daily(lines: Iterable[GeneratedLine]) -> dict[SeriesKey, dict[date, DayCost]]:
    sums: dict[SeriesKey, dict[date, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for line in lines:
        sums[(line.provider, line.service_name, line.currency)][line.charge_date] += (
            line.billed_cost
        )
    return {k: {d: DayCost(v, 1) for d, v in sorted(days.items())} for k, days in sums.items()}


def anomaly_scores(customers: int) -> tuple[int, int, int, int]:
    """(true positives, false positives, false negatives, false positives on the first day of a
    new resource of the service: a real step in cost, though not a labelled spike)."""
    tp = fp = fn = onsets = 0
    days = [START + WARM_UP + timedelta(days=i) for i in range((END - START - WARM_UP).days)]
    for index in range(customers):
        accounts = demo_accounts(f"eval-{index:03d}")
        lines = generate_bills(accounts, START, END, seed=SEED + index)
        series = daily(lines)
        labels: set[tuple[str, str, date]] = set()
        for account in accounts:
            spike = spike_day(account, START, END, SEED + index)
            if spike < START + WARM_UP:
                continue
            costliest = max(
                PRODUCTS[account.provider],
                key=lambda p: p.list_unit_price * Decimal(str(p.daily_quantity)),
            )
            labels.add((account.provider, costliest.service_name, spike))
            if account.tax_rate:
                labels.add((account.provider, "Tax", spike))
        found = {
            (a.provider, a.service, a.day)
            for key, values in series.items()
            for a in detect(key, values, days)
        }
        first: dict[tuple[str, str, str], date] = {}
        for line in lines:
            first.setdefault((line.provider, line.service_name, line.resource_id), line.charge_date)
        starts = {(p, s, d) for (p, s, _), d in first.items() if d > START}
        tp += len(found & labels)
        fp += len(found - labels)
        fn += len(labels - found)
        onsets += len((found - labels) & starts)
    return tp, fp, fn, onsets


def forecast_errors() -> tuple[list[float], list[bool]]:
    lines = generate_bills(list(demo.accounts().values()), START, END, seed=SEED)
    totals = by_provider_and_currency(daily(lines))
    errors, inside = [], []
    for history in totals.values():
        month = date(START.year, 3, 1)
        while month < END:
            following = (month + timedelta(days=32)).replace(day=1)
            actual = sum((v for d, v in history.items() if month <= d < following), Decimal(0))
            for day_of_month in (1, 8, 15, 22, 28):
                today = month.replace(day=day_of_month)
                known = {d: v for d, v in history.items() if d < today}
                result = month_end_forecast(known, today)
                if result is None or not actual:
                    continue
                errors.append(float(abs(result.forecast - actual) / abs(actual)))
                inside.append(result.lower <= actual <= result.upper)
            month = following
    return errors, inside


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=10, help="synthetic customers (x4)")
    args = parser.parse_args()
    tp, fp, fn, onsets = anomaly_scores(args.accounts)
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    print(
        f"anomalies: {args.accounts * 4} billing accounts x {(END - START).days} days: "
        f"precision {precision:.3f} recall {recall:.3f} (tp {tp}, fp {fp}, fn {fn}); "
        f"{onsets} of the false positives are a new resource's first day, precision counting "
        f"those as real changes {(tp + onsets) / (tp + fp) if tp + fp else float('nan'):.3f}"
    )
    errors, inside = forecast_errors()
    print(
        f"forecast: {len(errors)} month-end forecasts on the demo's year: MAPE "
        f"{100 * mean(errors):.2f}% (max {100 * max(errors):.2f}%), interval coverage "
        f"{100 * sum(inside) / len(inside):.1f}%"
    )


if __name__ == "__main__":
    main()
