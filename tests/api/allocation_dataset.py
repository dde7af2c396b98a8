"""A data set for the allocation reads: tagged and untagged lines (keys differing only in case, a
key with an empty value), billing accounts with sub-accounts and names (one renamed, one without
a name), account-level cost without a sub-account, credits, and several currencies per customer;
written through the real write path like the main data set."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pandas as pd

from cost_pipelines.warehouse.writer import CostWindow
from tests.api.dataset import Dataset

DAYS = 60
# (customer, provider, billing account, its name, currency, [(sub-account, its name)])
ACCOUNTS = (
    (
        "acme",
        "aws",
        "111111111111",
        "acme payer",
        "USD",
        [("210000000001", "acme-prod"), ("210000000002", "acme-staging")],
    ),
    ("acme", "aws", "222222222222", "", "USD", [("220000000001", "acme-data")]),
    (
        "acme",
        "azure",
        "ea-acme",
        "",
        "EUR",
        [("sub-prod", "acme-prod"), ("sub-dev", "acme-dev"), ("", "")],
    ),
    ("acme", "gcp", "01AB-CD", "acme billing", "GBP", [("acme-web", "acme web")]),
    ("acme", "vultr", "vultr-acme", "acme vultr", "USD", [("vultr-acme", "acme vultr")]),
    ("globex", "aws", "333333333333", "globex payer", "USD", [("330000000001", "globex-prod")]),
)
RENAMED = "111111111111"  # named "acme old payer" on its older lines
TEAMS = ("platform", "data", "web", "")
CASE_TWIN = "Team"  # an AWS key that differs from `team` only in case: another tag


def _tags(rng: random.Random, provider: str) -> dict[str, str]:
    if provider == "vultr" or rng.random() < 0.25:
        return {}  # Vultr has no tags; a quarter of the others are untagged
    tags = {"env": rng.choice(["prod", "dev"])}
    if rng.random() < 0.8:
        tags["team"] = rng.choice(TEAMS)  # "" is a key with an empty value, not untagged
    if provider == "aws" and rng.random() < 0.2:
        tags[CASE_TWIN] = rng.choice(TEAMS[:3])
    if provider == "gcp" and rng.random() < 0.5:
        tags["cost-center"] = rng.choice(["cc-1", "cc-2"])
    return tags


def _amount(rng: random.Random) -> Decimal:
    amount = Decimal(rng.randint(1, 900_000_000)) / Decimal(10**7)
    return -amount / 4 if rng.random() < 0.1 else amount  # some credits


def _rows(
    rng: random.Random,
    provider: str,
    account: str,
    name: str,
    currency: str,
    subs: list[tuple[str, str]],
    days: list[date],
) -> pd.DataFrame:
    records = []
    for day in days:
        for sub, sub_name in subs:
            for _ in range(rng.randint(1, 3)):
                billed = _amount(rng)
                old = account == RENAMED and day < days[len(days) // 2]
                records.append(
                    {
                        "ChargePeriodStart": datetime.combine(day, time(0), UTC),
                        "BilledCost": billed,
                        "EffectiveCost": billed,
                        "ListCost": billed,
                        "ContractedCost": billed,
                        "BillingCurrency": currency,
                        "BillingAccountName": "acme old payer" if old else name,
                        "SubAccountId": sub,
                        "SubAccountName": sub_name if rng.random() < 0.9 else "",
                        "ServiceName": "Compute",
                        "ServiceCategory": "Compute",
                        "ChargeCategory": "Credit" if billed < 0 else "Usage",
                        "ResourceId": f"{sub}/r{rng.randint(1, 4)}" if sub else "",
                        "Tags": _tags(rng, provider) if sub else {},
                    }
                )
    return pd.DataFrame.from_records(records)


def build_allocation_dataset(today: date, seed: int = 11) -> Dataset:
    rng = random.Random(seed)
    start = today - timedelta(days=DAYS)
    days = [start + timedelta(days=i) for i in range(DAYS + 1)]
    windows = []
    for customer, provider, account, name, currency, subs in ACCOUNTS:
        window = CostWindow(customer, provider, account, start, today + timedelta(days=1))
        windows.append((window, _rows(rng, provider, account, name, currency, subs, days)))
    return Dataset(windows, superseded=[])
