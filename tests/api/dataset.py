"""The known data set the API tests read: several customers, providers, currencies and months,
written through the real write path (including one window that is replaced)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pandas as pd
from clickhouse_connect.driver.client import Client

from cost_pipelines.warehouse.writer import CostWindow, replace_window

HISTORY_DAYS = 130
# (customer, provider, billing account, currency, days without data at the end)
ACCOUNTS = (
    ("acme", "aws", "111111111111", "USD", 0),
    ("acme", "aws", "222222222222", "USD", 2),
    ("acme", "azure", "sub-acme", "EUR", 1),
    ("acme", "gcp", "01AB-CD", "GBP", 0),
    ("globex", "gcp", "02EF-GH", "EUR", 0),
    ("globex", "vultr", "vultr-globex", "USD", 4),
    ("initech", "aws", "333333333333", "USD", 0),
    # A Cost Explorer-like source (no list or contracted price) beside a source that has them.
    ("umbrella", "aws", "444444444444", "USD", 0),
    ("umbrella", "vultr", "vultr-umbrella", "USD", 0),
)
# Sources that supply neither ListCost nor ContractedCost: stored NULL.
WITHOUT_LIST_AND_CONTRACTED = {"444444444444"}
CATALOG = {
    "aws": [
        ("Amazon EC2", "Compute", ["i-0a1", "i-0b2", "i-0c3"]),
        ("Amazon S3", "Storage", ["bucket-logs", "bucket-data"]),
        ("Amazon RDS", "Databases", ["db-main"]),
        ("AWS Support", "Management and Governance", [""]),
        ("Tax", "Other", [""]),
    ],
    "azure": [
        ("Virtual Machines", "Compute", ["vm-web", "vm-batch"]),
        ("Storage", "Storage", ["st-archive"]),
        ("Bandwidth", "Networking", [""]),
    ],
    "gcp": [
        ("Compute Engine", "Compute", ["gce-1", "gce-2"]),
        ("BigQuery", "Analytics", ["bq-warehouse"]),
        ("Cloud Storage", "Storage", ["gcs-backup"]),
    ],
    "vultr": [
        ("Cloud Compute", "Compute", ["vc2-a", "vc2-b"]),
        ("Block Storage", "Storage", ["blk-1"]),
    ],
}


@dataclass
class Load:
    """One replaced window and when its load happened (for `latest`'s collection time)."""

    window: CostWindow
    before: datetime
    after: datetime


@dataclass
class Dataset:
    windows: list[tuple[CostWindow, pd.DataFrame]]
    superseded: list[tuple[CostWindow, pd.DataFrame]]
    loads: list[Load] = field(default_factory=list)

    @property
    def current(self) -> pd.DataFrame:
        """What readers must see: the last rows written per window, with the window's keys."""
        frames = []
        for window, rows in self.windows:
            frame = rows.copy()
            frame["customer_id"] = window.customer_id
            frame["provider"] = window.provider
            frame["BillingAccountId"] = window.billing_account_id
            frame["day"] = frame["ChargePeriodStart"].map(lambda t: t.date())
            frames.append(frame)
        return pd.concat(frames, ignore_index=True)


def _amount(rng: random.Random) -> Decimal:
    """Exact amounts down to 1e-7 (unit prices like 0.0000001 exist), occasionally a credit."""
    amount = Decimal(rng.randint(1, 2_000_000_000)) / Decimal(10**7)
    return -amount / 10 if rng.random() < 0.03 else amount


def _rows(rng: random.Random, provider: str, currency: str, days: list[date]) -> pd.DataFrame:
    records = []
    for day in days:
        if rng.random() < 0.08:  # some days have no cost at all: trends must show zero
            continue
        for service, category, resources in rng.sample(CATALOG[provider], k=2):
            resource = rng.choice(resources)
            billed = _amount(rng)
            hour = rng.choice([0, 0, 0, 7, 23])
            records.append(
                {
                    "ChargePeriodStart": datetime.combine(day, time(hour), UTC),
                    "BilledCost": billed,
                    "EffectiveCost": (billed * Decimal("0.91")).quantize(Decimal("1e-10")),
                    "ListCost": billed * Decimal("1.2"),
                    "ContractedCost": billed * Decimal("1.05"),
                    "BillingCurrency": currency,
                    "ServiceName": service,
                    "ServiceCategory": category,
                    "ChargeCategory": "Credit" if billed < 0 else "Usage",
                    "ResourceId": resource,
                    "ResourceName": resource.upper(),
                    "RegionId": rng.choice(["us-east-1", "eu-west-1", "europe-west4"]),
                }
            )
    return pd.DataFrame.from_records(records)


def build_dataset(today: date, seed: int = 7) -> Dataset:
    rng = random.Random(seed)
    start = today - timedelta(days=HISTORY_DAYS)
    windows, superseded = [], []
    for customer, provider, account, currency, gap in ACCOUNTS:
        window = CostWindow(customer, provider, account, start, today + timedelta(days=1))
        last = today - timedelta(days=gap)
        days = [start + timedelta(days=i) for i in range((last - start).days + 1)]
        if (
            account == "111111111111"
        ):  # collected once, then restated: readers see only the restatement
            superseded.append((window, _rows(rng, provider, currency, days)))
        rows = _rows(rng, provider, currency, days)
        if account in WITHOUT_LIST_AND_CONTRACTED:
            rows["ListCost"] = None
            rows["ContractedCost"] = None
        windows.append((window, rows))
    return Dataset(windows, superseded)


def load_dataset(client: Client, dataset: Dataset) -> None:
    for window, rows in dataset.superseded:
        replace_window(client, window, rows, source="test-superseded")
    for window, rows in dataset.windows:
        before = datetime.now(UTC)
        replace_window(client, window, rows, source="test")
        dataset.loads.append(Load(window, before, datetime.now(UTC)))
