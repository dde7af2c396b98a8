"""The restatement ledger, the kept superseded loads and their retention, through the real
warehouse endpoint."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pandas as pd
from clickhouse_connect.driver.client import Client

from cost_pipelines.warehouse import ledger, retention
from cost_pipelines.warehouse.writer import CostWindow, clean_up, publish, replace_window, stage

WINDOW = CostWindow("ledger", "gcp", "0123-4567", date(2026, 10, 1), date(2026, 10, 3))


def lines(compute: str, storage: str | None, effective: str | None = None) -> pd.DataFrame:
    """Day 1: Compute (and Storage when given); day 2: Compute at 1."""
    rows = [("2026-10-01", "Compute", compute, effective), ("2026-10-02", "Compute", "1", None)]
    if storage is not None:
        rows.append(("2026-10-01", "Storage", storage, None))
    return pd.DataFrame(
        {
            "ChargePeriodStart": [r[0] for r in rows],
            "ServiceName": [r[1] for r in rows],
            "BilledCost": [r[2] for r in rows],
            "EffectiveCost": [r[3] for r in rows],
            "BillingCurrency": ["EUR"] * len(rows),
            "ChargeCategory": ["Usage"] * len(rows),
        }
    )


def recorded(client: Client, load_id: object) -> list[ledger.Restatement]:
    return sorted(
        ledger.of_loads(client, WINDOW.customer_id, [load_id]),  # type: ignore[list-item]
        key=lambda r: (r.charge_date, r.service_name),
    )


def test_a_replace_records_previous_new_and_delta_only_where_an_amount_changed(
    client: Client,
) -> None:
    first = replace_window(client, WINDOW, lines("10", "5", "9"), source="test")
    assert recorded(client, first.load_id) == []  # a first collection restates nothing
    second = replace_window(client, WINDOW, lines("12.5", None), source="test", run_id="run-2")
    changes = recorded(client, second.load_id)
    assert [(c.charge_date, c.service_name) for c in changes] == [
        (date(2026, 10, 1), "Compute"),
        (date(2026, 10, 1), "Storage"),
    ]  # day 2 is unchanged: no row
    compute, storage = changes
    assert compute.previous["BilledCost"] == Decimal("10")
    assert compute.new["BilledCost"] == Decimal("12.5")
    assert compute.delta["BilledCost"] == Decimal("2.5")
    # EffectiveCost was supplied before and is not now: the change is recorded, NULL stays NULL.
    assert compute.previous["EffectiveCost"] == Decimal("9")
    assert compute.new["EffectiveCost"] is None
    assert compute.delta["EffectiveCost"] == Decimal("-9")
    assert compute.previous["ListCost"] is None and compute.delta["ListCost"] is None
    assert (storage.previous_lines, storage.new_lines) == (1, 0)
    assert storage.delta["BilledCost"] == Decimal("-5")
    assert compute.collection_run_id == "run-2"
    assert compute.previous_loaded_at < compute.recorded_at


def test_superseded_loads_stay_and_a_never_published_load_is_deleted(client: Client) -> None:
    window = CostWindow("kept", "gcp", "1", WINDOW.start, WINDOW.end)
    replace_window(client, window, lines("1", "1"), source="test")
    abandoned = stage(client, window, lines("7", "7"), source="test")  # never published
    replace_window(client, window, lines("2", "2"), source="test")
    deadline = time.monotonic() + 60
    loads: set[str] = set()
    while time.monotonic() < deadline:
        loads = {
            str(row[0])
            for row in client.query(
                "SELECT DISTINCT load_id FROM costs WHERE customer_id = 'kept'"
            ).result_rows
        }
        if str(abandoned.load_id) not in loads:
            break
        time.sleep(0.5)
    assert str(abandoned.load_id) not in loads
    assert len(loads) == 2  # the superseded load and the current one


def test_of_two_concurrent_loads_the_ledger_records_only_the_one_readers_see(
    client: Client,
) -> None:
    window = CostWindow("race-ledger", "gcp", "1", WINDOW.start, WINDOW.end)
    replace_window(client, window, lines("1", None), source="test")
    earlier = stage(client, window, lines("5", None), source="test")
    later = stage(client, window, lines("3", None), source="test")
    for staged in (later, earlier):  # the later-staged load publishes first and wins
        publish(client, staged)
        clean_up(client, staged)
    assert [c.delta["BilledCost"] for c in ledger.of_loads(client, "race-ledger", [later.load_id])]
    assert ledger.of_loads(client, "race-ledger", [earlier.load_id]) == []


def as_of_total(client: Client, customer: str, instant: datetime) -> Decimal:
    rows = client.query(
        "SELECT sum(BilledCost) FROM costs_as_of(customer_id = {c:String}, "
        "as_of = {t:DateTime64(6, 'UTC')})",
        parameters={"c": customer, "t": instant.astimezone(UTC).replace(tzinfo=None)},
    ).result_rows
    return Decimal(rows[0][0])


def test_retention_deletes_only_loads_superseded_before_the_cutoff(client: Client) -> None:
    window = CostWindow("retained", "gcp", "1", WINDOW.start, WINDOW.end)
    published = []
    for amount in ("1", "2", "3"):
        staged = stage(client, window, lines(amount, None), source="test")
        published.append(publish(client, staged))
        clean_up(client, staged)
        time.sleep(0.01)
    assert [as_of_total(client, "retained", at) for at in published] == [2, 3, 4]
    before = retention.horizon(client)
    assert before is not None and before <= published[0]
    # Cutoff between the 2nd and 3rd: the 1st is superseded before it, the 2nd still current.
    cutoff = published[1] + (published[2] - published[1]) / 2
    result = retention.enforce(client, cutoff)
    # Both days' 1st pointers are superseded; day 2 never changed, so its pointers all name the
    # 1st load and its line stays: only day 1's line of the 1st load goes.
    assert (result.superseded_pointers, result.superseded_lines) == (2, 1)
    assert retention.horizon(client) == cutoff
    assert as_of_total(client, "retained", cutoff) == 3  # the version current at the cutoff
    assert as_of_total(client, "retained", published[2]) == 4
    current = client.query(
        "SELECT sum(BilledCost) FROM costs_current(customer_id = 'retained')"
    ).result_rows
    assert Decimal(current[0][0]) == 4
    stored = client.query("SELECT count() FROM costs WHERE customer_id = 'retained'").result_rows[
        0
    ][0]
    assert stored == 3  # day 1 of the 2nd and the 3rd load, day 2 of the 1st
    # A cutoff before the horizon deletes nothing and never moves it back.
    again = retention.enforce(client, cutoff - timedelta(days=1))
    assert again.superseded_lines == 0 and retention.horizon(client) == cutoff


def test_retention_keeps_the_lines_of_a_load_a_newer_pointer_still_names(client: Client) -> None:
    customer = "repointed"
    window = CostWindow(customer, "gcp", "1", WINDOW.start, WINDOW.end)
    published = []
    # Collected, collected again unchanged, then day 1 changed (day 2 still unchanged): every
    # pointer of day 2 names the first load, day 1's first two name it too.
    for amount in ("1", "1", "2"):
        staged = stage(client, window, lines(amount, None), source="test")
        published.append(publish(client, staged))
        clean_up(client, staged)
        time.sleep(0.01)
    assert [as_of_total(client, customer, at) for at in published] == [2, 2, 3]
    cutoff = datetime.now(UTC)  # past all three
    result = retention.enforce(client, cutoff)
    # Day 1's and day 2's first two pointers are superseded; of the lines only day 1's of the
    # first load go: day 2's are named by its newest pointer.
    assert (result.superseded_pointers, result.superseded_lines) == (4, 1)
    assert retention.horizon(client) == cutoff
    assert as_of_total(client, customer, cutoff) == 3
    current = client.query(
        "SELECT sum(BilledCost), count() FROM costs_current(customer_id = {c:String})",
        parameters={"c": customer},
    ).result_rows
    assert (Decimal(current[0][0]), current[0][1]) == (3, 2)
    stored = client.query(
        "SELECT count() FROM costs WHERE customer_id = {c:String}", parameters={"c": customer}
    ).result_rows[0][0]
    assert stored == 2  # day 1 of the third load, day 2 of the first
