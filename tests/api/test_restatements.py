"""A window restated three times: the restatements read lists the three changes exactly, every
read as of an instant between them answers that instant's version to the last decimal, and once
retention has passed the oldest instant is refused while the current answer stays."""

from __future__ import annotations

import time as clock
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

import pandas as pd
import pytest
from clickhouse_connect.driver.client import Client

from cost_api.readers.completeness import STATES
from cost_pipelines.warehouse import retention
from cost_pipelines.warehouse.connection import WarehouseSettings, create_client
from cost_pipelines.warehouse.writer import CostWindow, replace_window
from tests.support.api import Api
from tests.support.processes import WarehouseProcess

CUSTOMER = "restated"
BASE = f"/api/v2/costs/{CUSTOMER}/gcp"
# (day offset in the window, service, currency) -> BilledCost, per version.
Version = dict[tuple[int, str, str], str]
COMPUTE_0, STORAGE_0 = (0, "Compute", "USD"), (0, "Storage", "EUR")
COMPUTE_1 = (1, "Compute", "USD")
VERSIONS: list[Version] = [
    {COMPUTE_0: "10.123456789012", STORAGE_0: "5", COMPUTE_1: "7"},
    {COMPUTE_0: "12.000000000001", STORAGE_0: "5", COMPUTE_1: "7"},
    {COMPUTE_0: "12.000000000001", STORAGE_0: "4.5", COMPUTE_1: "8.25"},
    {COMPUTE_0: "10.123456789012", STORAGE_0: "4.5", COMPUTE_1: "8.25"},
]


@dataclass(frozen=True)
class Restated:
    window: CostWindow
    # after[k]: an instant after version k was published and before version k + 1 was.
    after: list[datetime]


def frame(window: CostWindow, version: Version) -> pd.DataFrame:
    keys = sorted(version)
    return pd.DataFrame(
        {
            "ChargePeriodStart": [
                datetime.combine(window.start + timedelta(days=d), time(), UTC) for d, _, _ in keys
            ],
            "ServiceName": [service for _, service, _ in keys],
            "BillingCurrency": [currency for _, _, currency in keys],
            "BilledCost": [version[key] for key in keys],
            "ChargeCategory": ["Usage"] * len(keys),
        }
    )


def totals(version: Version) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for (_, _, currency), amount in version.items():
        out[currency] = out.get(currency, Decimal(0)) + Decimal(amount)
    return out


def text(amount: Decimal) -> str:
    return "0" if amount.is_zero() else f"{amount.normalize():f}"


@pytest.fixture(scope="module")
def warehouse_client(api: Api, warehouse: WarehouseProcess) -> Iterator[Client]:
    client = create_client(
        WarehouseSettings(warehouse_port=warehouse.port, clickhouse_database=api.database)
    )
    yield client
    client.close()


@pytest.fixture(scope="module")
def restated(api: Api, warehouse_client: Client) -> Restated:
    start = api.today - timedelta(days=10)
    window = CostWindow(CUSTOMER, "gcp", "0001-AAAA", start, start + timedelta(days=3))
    after = []
    for number, version in enumerate(VERSIONS):
        replace_window(
            warehouse_client, window, frame(window, version), source="test", run_id=f"run-{number}"
        )
        clock.sleep(0.01)
        after.append(datetime.now(UTC))
        clock.sleep(0.01)
    return Restated(window, after)


def period(restated: Restated) -> dict[str, str]:
    return {"start": str(restated.window.start), "end": str(restated.window.end)}


def iso(instant: datetime) -> str:
    return instant.isoformat().replace("+00:00", "Z")


def test_restatements_list_the_three_deltas_exactly(api: Api, restated: Restated) -> None:
    answer = api.get(f"{BASE}/restatements", **period(restated))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    day0, day1 = (str(restated.window.start + timedelta(days=d)) for d in (0, 1))
    changes = [
        (
            c["collection_run_id"],
            c["charge_date"],
            c["service_name"],
            c["currency"],
            *(c[side]["billed_cost"] for side in ("previous", "new", "delta")),
        )
        for c in body["changes"]
    ]
    assert changes == [
        ("run-1", day0, "Compute", "USD", "10.123456789012", "12.000000000001", "1.876543210989"),
        ("run-2", day0, "Storage", "EUR", "5", "4.5", "-0.5"),
        ("run-2", day1, "Compute", "USD", "7", "8.25", "1.25"),
        ("run-3", day0, "Compute", "USD", "12.000000000001", "10.123456789012", "-1.876543210989"),
    ]
    assert body["count"] == 4
    assert all(c["day_had_ended"] for c in body["changes"])
    assert all(c["delta"]["list_cost"] is None for c in body["changes"])  # not supplied
    replaces = [
        (r["collection_run_id"], r["currency"], r["changes"], r["delta"]["billed_cost"])
        for r in body["replaces"]
    ]
    assert replaces == [
        ("run-1", "USD", 1, "1.876543210989"),
        ("run-2", "EUR", 1, "-0.5"),
        ("run-2", "USD", 1, "1.25"),
        ("run-3", "USD", 1, "-1.876543210989"),
    ]
    # Each replace became visible between the instants around it.
    recorded = sorted({r["recorded_at"] for r in body["replaces"]})
    assert len(recorded) == 3
    for number, at in enumerate(recorded, start=1):
        instant = datetime.fromisoformat(at.replace("Z", "+00:00"))
        assert restated.after[number - 1] < instant < restated.after[number]
    # As of before the third replace it had not happened yet.
    earlier = api.get(f"{BASE}/restatements", **period(restated), as_of=iso(restated.after[2]))
    runs = [c["collection_run_id"] for c in earlier.json()["changes"]]
    assert runs == ["run-1", "run-2", "run-2"]


def total(api: Api, restated: Restated, **extra: str) -> dict[str, str]:
    answer = api.get(f"{BASE}/total", **period(restated), **extra)
    assert answer.status_code == 200, answer.text
    return {t["currency"]: t["amount"] for t in answer.json()["totals"]}


def test_total_as_of_each_instant_answers_that_version_to_the_last_decimal(
    api: Api, restated: Restated
) -> None:
    for number, instant in enumerate(restated.after):
        expected = {c: text(a) for c, a in totals(VERSIONS[number]).items()}
        assert total(api, restated, as_of=iso(instant)) == expected, number
    assert total(api, restated) == {c: text(a) for c, a in totals(VERSIONS[-1]).items()}
    # Offsets are instants too: the same moment written in another zone.
    plus_two = restated.after[1].astimezone(UTC) + timedelta(hours=2)
    shifted = plus_two.replace(tzinfo=None).isoformat() + "+02:00"
    assert total(api, restated, as_of=shifted) == total(api, restated, as_of=iso(restated.after[1]))


def test_other_reads_as_of_answer_that_version_and_leave_the_state_cache_alone(
    api: Api, restated: Restated
) -> None:
    instant = iso(restated.after[1])
    cached = len(STATES._states)
    lines = api.get(f"{BASE}/metrics", **period(restated), as_of=instant).json()["data"]
    assert sorted((line["service_name"], line["billed_cost"]) for line in lines) == [
        ("Compute", "12.000000000001"),
        ("Compute", "7"),
        ("Storage", "5"),
    ]
    trend = api.get(f"{BASE}/trends", **period(restated), as_of=instant).json()
    [usd] = [series for series in trend["series"] if series["currency"] == "USD"]
    assert [point["amount"] for point in usd["points"]] == ["12.000000000001", "7", "0"]
    assert trend["completeness"][0]["checks"] is None  # not reconstructed for an instant
    export = api.get(f"{BASE}/export", **period(restated), as_of=instant)
    assert export.status_code == 200 and "12.000000000001" in export.text
    for endpoint, extra in [
        ("latest", {}),
        ("by-resource", {}),
        ("by-type", {}),
        ("by-tag", {"key": "team"}),
        ("tag-keys", {}),
        ("by-account", {}),
    ]:
        answer = api.get(f"{BASE}/{endpoint}", as_of=instant, **extra)
        assert answer.status_code == 200, (endpoint, answer.text)
        assert all(c["checks"] is None for c in answer.json()["completeness"]), endpoint
    by_type = api.get(f"{BASE}/by-type", **period(restated), as_of=instant).json()
    usd = [t for t in by_type["totals"] if t["currency"] == "USD"]
    assert [t["amount"] for t in usd] == ["19.000000000001"]  # version 1: 12.000000000001 + 7
    assert len(STATES._states) == cached
    current = api.get(f"{BASE}/metrics", **period(restated)).json()["data"]
    assert ("Compute", "10.123456789012") in {
        (line["service_name"], line["billed_cost"]) for line in current
    }


def test_a_converted_read_as_of_an_instant_uses_only_the_rates_loaded_by_then(
    api: Api, restated: Restated, warehouse_client: Client
) -> None:
    first = restated.window.start - timedelta(days=7)
    days = [first + timedelta(days=i) for i in range((restated.window.end - first).days)]
    warehouse_client.insert(
        "exchange_rates",
        [[day, "EUR", "USD", Decimal("1.1"), "test", datetime.now(UTC)] for day in days],
        column_names=["rate_date", "base", "currency", "rate", "source", "loaded_at"],
    )
    clock.sleep(0.01)
    now = iso(datetime.now(UTC))
    converted = total(api, restated, currency="EUR")
    assert set(converted) == {"EUR"}
    assert total(api, restated, currency="EUR", as_of=now) == converted
    # Before the rates were loaded the read had none to convert with: it said so then.
    refused = api.get(
        f"{BASE}/total", **period(restated), currency="EUR", as_of=iso(restated.after[3])
    )
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"] == ["query", "currency"]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("2026-11-03", "ISO 8601 instant"),
        ("2026-11-03T09:00:00", "zone"),
        ("yesterday", "ISO 8601 instant"),
        ("2999-01-01T00:00:00Z", "future"),
    ],
)
def test_a_malformed_or_future_as_of_is_a_422_naming_it(
    api: Api, restated: Restated, value: str, reason: str
) -> None:
    answer = api.get(f"{BASE}/total", **period(restated), as_of=value)
    assert answer.status_code == 422
    [error] = answer.json()["detail"]
    assert error["loc"] == ["query", "as_of"] and reason in error["msg"]


def test_after_retention_the_oldest_instant_is_refused_and_the_current_answer_stays(
    api: Api, restated: Restated, warehouse_client: Client
) -> None:
    current = total(api, restated)
    cutoff = restated.after[1]  # version 1 current, version 0 superseded before it
    result = retention.enforce(warehouse_client, cutoff)
    # At least version 0's day 0 (2 lines); its day 1 was unchanged in version 1, whose pointer
    # names it, so it stays: the read as of the cutoff below needs it.
    assert result.superseded_lines >= 2
    refused = api.get(f"{BASE}/total", **period(restated), as_of=iso(restated.after[0]))
    assert refused.status_code == 422
    [error] = refused.json()["detail"]
    assert error["loc"] == ["query", "as_of"]
    assert iso(cutoff) in error["msg"] and "earliest instant" in error["msg"]
    assert total(api, restated, as_of=iso(cutoff)) == {
        c: text(a) for c, a in totals(VERSIONS[1]).items()
    }
    assert total(api, restated) == current
    assert api.get(f"{BASE}/restatements", **period(restated)).json()["count"] == 4  # kept


def test_restatements_follow_the_read_conventions(api: Api, restated: Restated) -> None:
    assert api.get(f"{BASE}/restatements", token=api.scoped_token).status_code == 403
    assert api.client.get(f"{BASE}/restatements").status_code == 401
    misspelt = api.get(f"{BASE}/restatements", **period(restated), as_off="x")
    assert misspelt.status_code == 422
    assert api.get(f"{BASE}/restatements", start="2026-13-01").status_code == 422
    schema = api.client.get("/openapi.json").json()
    assert "/api/v2/costs/{customer_id}/{provider}/restatements" in schema["paths"]
    assert "Restatements" in schema["components"]["schemas"]
