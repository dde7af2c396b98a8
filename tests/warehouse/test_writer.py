"""The window-replace write path, through the real warehouse endpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
from clickhouse_connect.driver.client import Client

from cost_pipelines.warehouse import ledger
from cost_pipelines.warehouse.writer import (
    CostWindow,
    InvalidCostRows,
    clean_up,
    publish,
    replace_window,
    replace_windows,
    stage,
)
from tests.support.processes import WarehouseProcess

WINDOW = CostWindow("acme", "aws", "111122223333", date(2026, 10, 1), date(2026, 10, 8))


def line_set(label: str, days: int, per_day: int, unit: str) -> pd.DataFrame:
    """`days` x `per_day` lines, each costing `unit`, tagged with the set's label."""
    return pd.DataFrame(
        {
            "ChargePeriodStart": [
                pd.Timestamp(WINDOW.start + timedelta(days=d))
                for d in range(days)
                for _ in range(per_day)
            ],
            "BilledCost": [unit] * (days * per_day),
            "BillingCurrency": ["USD"] * (days * per_day),
            "ServiceName": [f"svc-{i % 7}" for i in range(days * per_day)],
            "ResourceId": [f"{label}-{i}" for i in range(days * per_day)],
            "Tags": [{"set": label}] * (days * per_day),
        }
    )


def current(client: Client, customer: str = "acme") -> pd.DataFrame:
    return client.query_df(
        "SELECT ResourceId, BilledCost, Tags['set'] AS label, toDate(ChargePeriodStart) AS day "
        "FROM costs_current(customer_id={customer:String})",
        parameters={"customer": customer},
    )


def test_replacing_a_window_leaves_exactly_the_new_rows(client: Client) -> None:
    replace_window(client, WINDOW, line_set("old", 7, 3, "1.5"), source="test")
    result = replace_window(client, WINDOW, line_set("new", 5, 2, "0.0000001"), source="test")

    rows = current(client)
    assert result.rows_written == 10
    assert result.billed_by_currency == {"USD": Decimal("0.0000010")}
    assert set(rows["label"]) == {"new"}
    assert len(rows) == 10
    assert sum(rows["BilledCost"]) == Decimal("0.000001")


def test_running_the_same_replace_twice_does_not_duplicate(client: Client) -> None:
    rows = line_set("same", 7, 4, "2.25")
    replace_window(client, WINDOW, rows, source="test")
    replace_window(client, WINDOW, rows, source="test")
    assert len(current(client)) == 28


def lines_by_load(client: Client, customer: str, expected: dict[str, int]) -> dict[str, int]:
    """Stored lines per load of the customer, once they equal `expected` (a copy found
    unchanged is deleted in the background) or a minute has passed."""
    deadline = time.monotonic() + 60
    while True:
        found = {
            str(load): int(n)
            for load, n in client.query(
                "SELECT load_id, count() FROM costs WHERE customer_id = {c:String} "
                "GROUP BY load_id",
                parameters={"c": customer},
            ).result_rows
        }
        if found == expected or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def newest_pointers(client: Client, customer: str) -> dict[date, tuple[str, datetime, str]]:
    """Per day: the load readers follow, its pointer's loaded_at and collection run."""
    rows = client.query(
        "SELECT charge_date, argMax(load_id, loaded_at), max(loaded_at), "
        "argMax(collection_run_id, loaded_at) FROM cost_loads WHERE customer_id = {c:String} "
        "GROUP BY charge_date ORDER BY charge_date",
        parameters={"c": customer},
    ).result_rows
    return {day: (str(load), loaded, run) for day, load, loaded, run in rows}


def as_of(client: Client, customer: str, instant: datetime) -> list[tuple[str, Decimal]]:
    return sorted(
        client.query(
            "SELECT ResourceId, BilledCost FROM costs_as_of(customer_id = {c:String}, "
            "as_of = {t:DateTime64(6, 'UTC')})",
            parameters={"c": customer, "t": instant.astimezone(UTC).replace(tzinfo=None)},
        ).result_rows
    )


def test_a_window_collected_again_unchanged_is_not_stored_twice(client: Client) -> None:
    customer = "unchanged"
    window = CostWindow(customer, "aws", "1", WINDOW.start, WINDOW.end)
    rows = line_set("same", 7, 4, "2.25")
    first = replace_window(client, window, rows, source="test", run_id="run-1")
    before, answer = newest_pointers(client, customer), current(client, customer)
    time.sleep(0.01)
    between = datetime.now(UTC)
    time.sleep(0.01)
    second = replace_window(client, window, rows, source="test", run_id="run-2")
    assert second.rows_written == 28 and second.load_id != first.load_id
    # The second load's copy is gone; the first load's 28 lines are all that is stored.
    assert lines_by_load(client, customer, {str(first.load_id): 28}) == {str(first.load_id): 28}
    after = newest_pointers(client, customer)
    assert sorted(after) == window.days
    for day in window.days:
        load, loaded_at, run = after[day]
        assert load == str(first.load_id)
        assert loaded_at > before[day][1] and run == "run-2"  # the new collection is seen
    pd.testing.assert_frame_equal(
        current(client, customer).sort_values("ResourceId", ignore_index=True),
        answer.sort_values("ResourceId", ignore_index=True),
    )
    now = datetime.now(UTC)
    assert as_of(client, customer, between) == as_of(client, customer, now)
    assert len(as_of(client, customer, between)) == 28
    assert ledger.of_loads(client, customer, [second.load_id]) == []  # nothing restated


def test_only_the_changed_day_of_a_window_collected_again_is_stored_again(
    client: Client,
) -> None:
    customer = "newest-day"
    window = CostWindow(customer, "aws", "1", WINDOW.start, WINDOW.end)
    rows = line_set("same", 7, 4, "2.25")
    first = replace_window(client, window, rows, source="test")
    last = pd.Timestamp(window.days[-1])
    changed = rows.assign(
        BilledCost=rows["BilledCost"].where(rows["ChargePeriodStart"] != last, "3")
    )
    second = replace_window(client, window, changed, source="test")
    expected = {str(first.load_id): 28, str(second.load_id): 4}
    assert lines_by_load(client, customer, expected) == expected
    pointed = {day: load for day, (load, _, _) in newest_pointers(client, customer).items()}
    assert pointed == {
        day: str(second.load_id if day == window.days[-1] else first.load_id) for day in window.days
    }
    answer = current(client, customer)
    assert len(answer) == 28
    assert sum(answer["BilledCost"]) == Decimal("2.25") * 24 + Decimal(3) * 4
    assert {r.charge_date for r in ledger.of_loads(client, customer, [second.load_id])} == {
        window.days[-1]
    }


def test_an_empty_set_empties_the_window_but_not_other_days(client: Client) -> None:
    outside = CostWindow("acme", "aws", "111122223333", date(2026, 10, 8), date(2026, 10, 9))
    replace_window(client, WINDOW, line_set("inside", 7, 1, "1"), source="test")
    replace_window(
        client,
        outside,
        pd.DataFrame(
            {"ChargePeriodStart": ["2026-10-08"], "BilledCost": ["9"], "BillingCurrency": ["USD"]}
        ),
        source="test",
    )
    replace_window(client, WINDOW, line_set("none", 0, 0, "1"), source="test")
    rows = current(client)
    assert [day.date() for day in rows["day"]] == [date(2026, 10, 8)]
    replace_window(client, outside, line_set("none", 0, 0, "1"), source="test")
    assert current(client).empty


def test_other_customers_accounts_and_providers_are_untouched(client: Client) -> None:
    other = CostWindow("globex", "aws", "111122223333", WINDOW.start, WINDOW.end)
    replace_window(client, other, line_set("globex", 7, 2, "3"), source="test")
    replace_window(client, WINDOW, line_set("acme", 7, 1, "1"), source="test")
    replace_window(client, WINDOW, line_set("acme2", 7, 1, "1"), source="test")
    assert set(current(client, "globex")["label"]) == {"globex"}
    assert len(current(client, "globex")) == 14


def test_rows_outside_the_window_are_refused_and_nothing_is_written(client: Client) -> None:
    replace_window(client, WINDOW, line_set("kept", 7, 1, "1"), source="test")
    bad = pd.DataFrame(
        {
            "ChargePeriodStart": ["2026-10-02", "2026-11-02"],
            "BilledCost": ["1", "2"],
            "BillingCurrency": ["USD"] * 2,
        }
    )
    with pytest.raises(
        InvalidCostRows, match=r"row 1: ChargePeriodStart 2026-11-02 .* outside the window"
    ):
        replace_window(client, WINDOW, bad, source="test")
    assert set(current(client)["label"]) == {"kept"}


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("BilledCost", "12,5", "row 0: BilledCost '12,5' is not a number"),
        ("BillingCurrency", "dollars", "row 0: BillingCurrency 'dollars' is not an ISO 4217 code"),
        (
            "ChargePeriodStart",
            "yesterday",
            "row 0: ChargePeriodStart 'yesterday' is not a timestamp",
        ),
    ],
)
def test_malformed_values_are_named_with_their_row_and_column(
    client: Client, column: str, value: str, message: str
) -> None:
    rows = pd.DataFrame(
        {"ChargePeriodStart": ["2026-10-02"], "BilledCost": ["1"], "BillingCurrency": ["USD"]}
    )
    rows[column] = [value]
    with pytest.raises(InvalidCostRows, match=message):
        replace_window(client, WINDOW, rows, source="test")


WRITE_ORDER = ["a", "b", "c", "a", "c"]


def is_subsequence(items: list[str], sequence: list[str]) -> bool:
    remaining = iter(sequence)
    return all(any(item == candidate for candidate in remaining) for item in items)


READER = textwrap.dedent(
    """
    import json, sys, pathlib
    from cost_pipelines.warehouse.connection import WarehouseSettings, create_client
    port, stop_file, out_file, ready_file = int(sys.argv[1]), *map(pathlib.Path, sys.argv[2:5])
    client = create_client(WarehouseSettings(warehouse_port=port))
    seen = []
    while not stop_file.exists():
        if len(seen) == 1:
            ready_file.touch()
        rows = client.query(
            "SELECT Tags['set'] AS label, count() FROM costs_current(customer_id={c:String}) "
            "WHERE provider = 'aws' GROUP BY label ORDER BY label",
            parameters={"c": "race"},
        ).result_rows
        seen.append([[label, n] for label, n in rows])
    out_file.write_text(json.dumps(seen))
    """
)


@pytest.mark.slow
def test_a_reader_in_another_process_sees_one_whole_set_at_a_time(
    client: Client, warehouse: WarehouseProcess, database: str, tmp_path: Path
) -> None:
    window = CostWindow("race", "aws", "999", WINDOW.start, WINDOW.end)
    sets = {
        "a": line_set("a", 7, 3000, "1"),
        "b": line_set("b", 5, 1000, "2"),
        "c": line_set("c", 7, 2000, "3"),
    }
    sizes = {label: len(rows) for label, rows in sets.items()}
    stop_file, out_file = tmp_path / "stop", tmp_path / "seen.json"
    ready_file = tmp_path / "ready"
    replace_window(client, window, sets["a"], source="test")
    reader = subprocess.Popen(
        [
            sys.executable,
            "-c",
            READER,
            str(warehouse.port),
            *map(str, (stop_file, out_file, ready_file)),
        ],
        env={**os.environ, "CLICKHOUSE_DATABASE": database},  # the reader's WarehouseSettings
    )
    try:
        deadline = time.monotonic() + 60
        while not ready_file.exists() and reader.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)  # the writer starts once the reader reads
        for label in WRITE_ORDER[1:]:
            # Streamed in batches of 1,000 lines: the window flips only after the last batch.
            batches = (sets[label].iloc[i : i + 1000] for i in range(0, sizes[label], 1000))
            replace_window(client, window, batches, source="test")
        stop_file.touch()
        assert reader.wait(timeout=60) == 0
    finally:
        if reader.poll() is None:
            reader.kill()
    seen = json.loads(out_file.read_text())
    assert len(seen) >= 5, "the reader should have read while the writer worked"
    for observation in seen:
        assert len(observation) == 1 and observation[0][1] == sizes[observation[0][0]], (
            f"empty, partial or mixed window seen: {observation}"
        )
    labels = [observation[0][0] for observation in seen]
    changes = [label for i, label in enumerate(labels) if i == 0 or labels[i - 1] != label]
    assert is_subsequence(changes, WRITE_ORDER), f"sets seen out of write order: {changes}"
    assert [[label, n] for label, n in current_counts(client)] == [["c", sizes["c"]]]


def current_counts(client: Client) -> list[tuple[str, int]]:
    return [
        (str(label), int(n))
        for label, n in client.query(
            "SELECT Tags['set'] AS label, count() "
            "FROM costs_current(customer_id={c:String}) GROUP BY label",
            parameters={"c": "race"},
        ).result_rows
    ]


def test_rows_of_a_refused_stream_are_deleted_by_the_next_load(client: Client) -> None:
    window = CostWindow("gc", "gcp", "0123-4567", WINDOW.start, WINDOW.end)
    replace_window(client, window, line_set("first", 7, 50, "1"), source="test")
    with pytest.raises(InvalidCostRows):
        bad = line_set("bad", 7, 10, "1").assign(BillingCurrency="not a code")
        replace_window(client, window, [line_set("half", 7, 20, "1"), bad], source="test")
    replace_window(client, window, line_set("second", 7, 10, "1"), source="test")
    deadline = time.monotonic() + 60
    stored = -1
    while time.monotonic() < deadline:
        stored = client.query(
            "SELECT count() FROM costs WHERE customer_id = {c:String}", parameters={"c": "gc"}
        ).result_rows[0][0]
        if stored == 420:
            break
        time.sleep(0.5)
    # The refused stream's stored batch is gone; the superseded load stays for as_of reads.
    assert stored == 420  # 350 superseded + 70 current


def test_overlapping_loads_of_one_window_leave_the_later_one_whole(client: Client) -> None:
    window = CostWindow("overlap", "aws", "1", WINDOW.start, WINDOW.end)
    for finish_first in ("earlier", "later"):
        earlier = stage(client, window, line_set("earlier", 7, 5, "1"), source="test")
        later = stage(client, window, line_set("later", 7, 3, "2"), source="test")
        order = [earlier, later] if finish_first == "earlier" else [later, earlier]
        for staged in order:
            publish(client, staged)
            clean_up(client, staged)
        rows = current(client, "overlap")
        assert set(rows["label"]) == {"later"}, finish_first
        assert len(rows) == 21


def test_cost_columns_a_provider_does_not_supply_are_null_not_the_billed_cost(
    client: Client,
) -> None:
    window = CostWindow("fallback", "vultr", "1", WINDOW.start, WINDOW.end)
    rows = pd.DataFrame(
        {
            "ChargePeriodStart": ["2026-10-02", "2026-10-03"],
            "BilledCost": ["12.5", "-3"],
            "ListCost": ["14", "0"],
            "BillingCurrency": ["USD", "USD"],
        }
    )
    replace_window(client, window, rows, source="test")
    stored = client.query(
        "SELECT BilledCost, EffectiveCost, ListCost, ContractedCost "
        "FROM costs_current(customer_id={c:String}) ORDER BY ChargePeriodStart",
        parameters={"c": "fallback"},
    ).result_rows
    assert stored == [
        (Decimal("12.5"), None, Decimal("14"), None),
        (Decimal("-3"), None, Decimal("0"), None),
    ]


def test_the_windows_of_one_run_are_published_together(client: Client) -> None:
    other = CostWindow("acme", "aws", "444455556666", WINDOW.start, WINDOW.end)
    results = replace_windows(
        client,
        [(WINDOW, line_set("a", 7, 2, "1")), (other, line_set("b", 3, 1, "2"))],
        source="test",
        run_id="run-1",
    )

    assert [r.rows_written for r in results] == [14, 3]
    assert [r.billed_by_currency for r in results] == [{"USD": Decimal(14)}, {"USD": Decimal(6)}]
    assert sorted(set(current(client)["label"])) == ["a", "b"]
    # One pointer insert: every day of both accounts carries the same instant of publication.
    pointers = client.query(
        "SELECT BillingAccountId, count(), uniqExact(published_at), any(collection_run_id) "
        "FROM cost_loads WHERE customer_id = 'acme' GROUP BY BillingAccountId ORDER BY 1"
    ).result_rows
    assert [(a, n, r) for a, n, _, r in pointers] == [
        ("111122223333", 7, "run-1"),
        ("444455556666", 7, "run-1"),
    ]
    instants = client.query(
        "SELECT uniqExact(published_at) FROM cost_loads WHERE customer_id = 'acme'"
    ).result_rows
    assert instants == [(1,)]


def test_windows_published_together_must_share_the_window_and_differ_in_account(
    client: Client,
) -> None:
    later = CostWindow("acme", "aws", "444455556666", WINDOW.start, WINDOW.end + timedelta(days=1))
    with pytest.raises(ValueError, match="must share customer, provider and window"):
        replace_windows(
            client,
            [(WINDOW, line_set("a", 1, 1, "1")), (later, line_set("b", 1, 1, "1"))],
            source="test",
        )
    with pytest.raises(ValueError, match="distinct accounts"):
        replace_windows(
            client,
            [(WINDOW, line_set("a", 1, 1, "1")), (WINDOW, line_set("b", 1, 1, "1"))],
            source="test",
        )
    # Refused before any row was stored.
    stored = client.query("SELECT count() FROM costs WHERE customer_id = 'acme'").result_rows
    assert stored == [(0,)]
