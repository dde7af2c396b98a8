"""Answers that say how far they can be trusted: constant spend shows no change whatever the
buckets, shares add up, and every aggregate names each provider's completeness."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pandas as pd
import pytest

from cost_pipelines.warehouse.connection import WarehouseSettings, create_client
from cost_pipelines.warehouse.writer import CostWindow, replace_window
from tests.api import expected
from tests.api.dataset import Dataset
from tests.support.api import Api, serve_api
from tests.support.processes import WarehouseProcess

pytestmark = pytest.mark.slow

DAILY = Decimal("10.00")


@pytest.fixture(scope="module")
def steady(api: Api, warehouse: WarehouseProcess) -> date:
    """Customer `steady`: 10 USD every day for 80 days up to and including today."""
    first = api.today - timedelta(days=80)
    days = [first + timedelta(days=i) for i in range(81)]
    rows = pd.DataFrame(
        {
            "ChargePeriodStart": [datetime.combine(d, time(), UTC) for d in days],
            "BilledCost": [DAILY] * len(days),
            "BillingCurrency": ["USD"] * len(days),
            "ServiceName": ["Amazon EC2"] * len(days),
        }
    )
    client = create_client(WarehouseSettings(warehouse_port=warehouse.port))
    try:
        window = CostWindow("steady", "aws", "555555555555", first, api.today + timedelta(days=1))
        replace_window(client, window, rows, source="test")
    finally:
        client.close()
    return first


def _inside_buckets(day: date) -> date:
    """The day itself or the nearest before it that starts neither an ISO week nor a month, so a
    period bounded by such days cuts its first and last week and month whatever today is."""
    while day.weekday() == 0 or day.day == 1:
        day -= timedelta(days=1)
    return day


@pytest.mark.parametrize("group_by", ["day", "week", "month"])
@pytest.mark.parametrize(
    "period",
    [
        {"days": 45},  # ends today: the last bucket is open, the first one is cut
        {"days": 61},
        {"start_back": 38, "end_back": 3},  # cut at both ends, no open day
    ],
)
def test_constant_daily_spend_shows_no_change_at_any_grain(
    api: Api, steady: date, group_by: str, period: dict[str, int]
) -> None:
    params: dict[str, Any] = {"group_by": group_by}
    if "days" in period:
        params["days"] = period["days"]
    else:
        params["start"] = str(_inside_buckets(api.today - timedelta(days=period["start_back"])))
        params["end"] = str(_inside_buckets(api.today - timedelta(days=period["end_back"])))

    body = api.get("/api/v2/costs/steady/aws/trends", **params).json()

    [series] = body["series"]
    points = series["points"]
    assert len(points) >= 2
    for point in points[1:]:
        if point["daily_average"] is None:  # every day of it is open (today alone)
            assert point["open_days"] == point["days"] and point["change"] is None
            continue
        assert Decimal(point["daily_average"]) == DAILY
        assert Decimal(point["change_percent"]) == 0, point
        assert Decimal(point["change"]) == 0
    partial = [p for p in points if p["partial"]]
    if group_by != "day":
        # A cut or open bucket is compared by its daily average, never by its amount.
        assert partial and all(p["change_basis"] != "total" for p in partial[1:])
    if "days" in period:
        last = points[-1]
        assert (
            last["partial"]
            and last["open_days"] == 1
            and last["end"] == str(api.today + timedelta(days=1))
        )


def test_by_resource_shares_of_the_gross_cost_add_up_to_100(api: Api, lines: pd.DataFrame) -> None:
    body = api.get("/api/v2/costs/acme/all/by-resource", days=365, limit=1000).json()
    tomorrow = api.today + timedelta(days=1)
    rows = expected.select(lines, "acme", "all", tomorrow - timedelta(days=365), tomorrow)
    assert (rows["BilledCost"] < 0).any(), "the data set must hold credits"
    for total in body["totals"]:
        currency = total["currency"]
        mine = [r for r in body["data"] if r["currency"] == currency]
        billed = rows[rows["BillingCurrency"] == currency]["BilledCost"]
        gross = expected.dsum(a for a in billed if a > 0)
        credits = expected.dsum(a for a in billed if a < 0)
        assert (
            Decimal(total["gross_cost"])
            == gross
            == expected.dsum(Decimal(r["gross_cost"]) for r in mine)
        )
        assert (
            Decimal(total["credits"])
            == credits
            == expected.dsum(Decimal(r["credits"]) for r in mine)
        )
        assert Decimal(total["amount"]) == gross + credits
        shares = [Decimal(r["share_percent"]) for r in mine]
        assert all(s >= 0 for s in shares)
        # Each share is rounded to 2 decimals: the sum is 100 within half a hundredth each.
        assert abs(sum(shares) - 100) <= Decimal("0.005") * len(shares)


@pytest.mark.parametrize("read", ["total", "by-type", "by-resource", "trends", "latest"])
def test_every_aggregate_names_each_providers_completeness(
    api: Api, lines: pd.DataFrame, dataset: Dataset, read: str
) -> None:
    body = api.get(f"/api/v2/costs/acme/all/{read}").json()
    tomorrow = api.today + timedelta(days=1)
    start = tomorrow - timedelta(days=30)
    month = api.today.replace(day=1)
    providers = ["aws", "azure", "gcp"]
    assert [c["provider"] for c in body["completeness"]] == providers
    for entry in body["completeness"]:
        provider = entry["provider"]
        last = expected.last_complete_day(lines, dataset.loads, "acme", provider)
        assert entry["last_complete_day"] == str(last)
        loads = [
            x
            for x in dataset.loads
            if (x.window.customer_id, x.window.provider)
            == (
                "acme",
                provider,
            )
        ]
        collected = datetime.fromisoformat(entry["last_collected_at"])
        assert max(x.before for x in loads) <= collected <= max(x.after for x in loads)
        # Dagster is not running for these tests: unknown, not an error.
        assert entry["checks"] is None and entry["checks_passed"] is None
        if read == "latest":
            continue
        is_open = expected.open_days(lines, dataset.loads, "acme", [provider], api.today)
        days = [start + timedelta(days=i) for i in range(30)]
        assert entry["open_days"] == sum(1 for d in days if is_open(d))
        # Lines of an open billing period are estimated (the write path marks them).
        mine = expected.select(lines, "acme", provider, start, tomorrow)
        assert entry["estimated_days"] == len({d for d in mine["day"] if d >= month})


@pytest.fixture
def silent_dagster() -> Iterator[int]:
    """A port that accepts connections and never answers, like a hung webserver."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for connection in held:
        connection.close()
    server.close()


def test_a_hung_dagster_leaves_checks_unknown_and_the_read_answers(
    api: Api, warehouse: WarehouseProcess, silent_dagster: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGSTER_GRAPHQL_URL", f"http://127.0.0.1:{silent_dagster}/graphql")
    monkeypatch.setenv("COST_API_CHECKS_TIMEOUT_S", "0.2")
    with serve_api(monkeypatch, warehouse.port, api.keys_file, database=api.database) as client:
        headers = {"Authorization": f"Bearer {api.token}"}
        answers = [client.get("/api/v2/costs/acme/aws/total", headers=headers) for _ in range(2)]
    for answer in answers:
        assert answer.status_code == 200, answer.text
        [entry] = answer.json()["completeness"]
        assert entry["provider"] == "aws"
        assert entry["checks"] is None and entry["checks_passed"] is None
        assert entry["last_complete_day"] is not None
