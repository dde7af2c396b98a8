"""FOCUS line items for the benchmarks, generated per window as the collectors hand them over.

A customer's lines cover `days` days up to today, spread over 4 providers (or fewer) with 2
billing accounts each (or another number), `resources` resources, 40 services and 2 currencies;
each (provider, account, calendar month) is one window, the unit `replace_window` replaces.
Amounts are exact decimal strings (as Cost Explorer and CSV exports deliver them) with up to 10
decimals; generation is vectorised and deterministic (seeded)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from cost_pipelines.providers import PROVIDERS

SERVICES = [
    (f"{category} service {i}", category)
    for i, category in enumerate(
        ["Compute", "Storage", "Databases", "Networking", "Analytics"] * 8, start=1
    )
]
REGIONS = ["us-east-1", "eu-west-1", "westeurope", "europe-west4", "ams", "fra"]
CURRENCY = {"aws": "USD", "azure": "EUR", "gcp": "USD", "vultr": "USD"}
ACCOUNTS_PER_PROVIDER = 2


@dataclass(frozen=True)
class Customer:
    customer_id: str
    lines: int
    days: int = 365
    resources: int = 20_000
    providers: tuple[str, ...] = PROVIDERS
    accounts: int = ACCOUNTS_PER_PROVIDER


@dataclass(frozen=True)
class Window:
    customer_id: str
    provider: str
    account: str
    start: date
    end: date
    lines: int


def month_windows(today: date, days: int) -> list[tuple[date, date]]:
    """Calendar-month windows covering the last `days` days up to and including today."""
    start, end = today - timedelta(days=days - 1), today + timedelta(days=1)
    windows, cursor = [], start
    while cursor < end:
        after = min((cursor.replace(day=1) + timedelta(days=32)).replace(day=1), end)
        windows.append((cursor, after))
        cursor = after
    return windows


def windows(customer: Customer, today: date) -> list[Window]:
    """The customer's windows, lines shared out in proportion to each window's days."""
    months = month_windows(today, customer.days)
    accounts = [
        (p, f"{p}-account-{a}") for p in customer.providers for a in range(customer.accounts)
    ]
    total_days = sum((end - start).days for start, end in months) * len(accounts)
    out = []
    for provider, account in accounts:
        for start, end in months:
            share = customer.lines * (end - start).days // total_days
            out.append(Window(customer.customer_id, provider, account, start, end, share))
    missing = customer.lines - sum(w.lines for w in out)
    out[-1] = Window(**{**out[-1].__dict__, "lines": out[-1].lines + missing})
    return out


def _scaled(units: np.ndarray, scale: int) -> pa.Array:
    """Exact decimals `units` x 10^-scale, built from their unscaled 128-bit values."""
    words = np.zeros((len(units), 2), dtype=np.int64)
    words[:, 0] = units
    words[:, 1] = np.where(units < 0, -1, 0)
    return pa.Array.from_buffers(
        pa.decimal128(38, scale), len(units), [None, pa.py_buffer(words.tobytes())]
    )


def window_table(window: Window, customer: Customer, seed: int) -> pa.Table:
    """One window's lines as an Arrow table of the columns a collector supplies."""
    rng = np.random.default_rng(seed)
    n = window.lines
    days = (window.end - window.start).days
    day = rng.integers(0, days, n)
    base = np.datetime64(window.start.isoformat(), "s")
    starts = base + (day * 86_400).astype("timedelta64[s]")
    resource = rng.integers(0, customer.resources, n)
    service = resource % len(SERVICES)
    units = rng.integers(1, 10**10, n)
    names = np.array([s for s, _ in SERVICES], dtype=object)
    categories = np.array([c for _, c in SERVICES], dtype=object)
    resource_ids = pc.binary_join_element_wise(
        f"{window.provider}/res-", pc.cast(pa.array(resource), pa.string()), ""
    )
    billed = _scaled(units, 10)
    return pa.table(
        {
            "ChargePeriodStart": pa.array(starts, pa.timestamp("s", "UTC")),
            "ChargePeriodEnd": pa.array(starts + np.timedelta64(1, "D"), pa.timestamp("s", "UTC")),
            "BilledCost": pc.cast(billed, pa.string()),
            "EffectiveCost": pc.cast(_scaled(units * 9 // 10, 10), pa.string()),
            "ListCost": pc.cast(_scaled(units * 12 // 10, 10), pa.string()),
            "ContractedCost": pc.cast(billed, pa.string()),
            "PricingQuantity": pc.cast(_scaled(rng.integers(1, 10**6, n), 3), pa.string()),
            "PricingUnit": pa.array(np.where(service % 2 == 0, "Hours", "GB-Mo")),
            "BillingCurrency": pa.repeat(CURRENCY[window.provider], n),
            "ServiceName": pa.array(names[service], pa.string()),
            "ServiceCategory": pa.array(categories[service], pa.string()),
            "ChargeCategory": pa.repeat("Usage", n),
            "ResourceId": resource_ids,
            "ResourceName": pc.binary_join_element_wise("name of ", resource_ids, ""),
            "RegionId": pa.array(np.array(REGIONS, dtype=object)[resource % len(REGIONS)]),
            "SkuId": pc.binary_join_element_wise(
                "SKU-", pc.cast(pa.array(service * 7 + day % 7), pa.string()), ""
            ),
        }
    )


def window_frames(
    customer: Customer, today: date, seed: int = 7
) -> Iterator[tuple[Window, pd.DataFrame]]:
    """Each window of the customer with its lines as the DataFrame a collector hands over."""
    for number, window in enumerate(windows(customer, today)):
        yield window, window_table(window, customer, seed + number).to_pandas()
