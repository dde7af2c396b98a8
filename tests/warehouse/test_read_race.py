"""Every cost read of the API sees one whole set of a window at a time while the window is
replaced: the daily sums and the lines they sum flip together, never a partial window, and
latest never pairs one set's day with another set's lines.

A reader in another process runs the API's own readers (CostReader) in a loop while this
process replaces one window three times; each answer is reduced to a few figures and must equal
the figures of exactly one of the three sets, read the same way from a customer holding only
that set."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from cost_api.params import CostMetric, CostQuery
from cost_api.readers.cost_reader import (
    BY_RESOURCE_NAMES_SQL,
    BY_RESOURCE_SQL,
    BY_RESOURCE_TOP_SQL,
    LATEST_SQL,
    CostReader,
)
from cost_pipelines.warehouse.writer import CostWindow, replace_window
from tests.support.processes import WarehouseProcess
from tests.support.read_figures import PERIOD, figures
from tests.warehouse.test_writer import WINDOW, WRITE_ORDER, is_subsequence, line_set

READER = textwrap.dedent(
    """
    import json, sys, pathlib
    from tests.support.read_figures import figures
    from cost_pipelines.warehouse.connection import WarehouseSettings, create_client
    port, stop_file, out_file, ready_file = int(sys.argv[1]), *map(pathlib.Path, sys.argv[2:5])
    client = create_client(WarehouseSettings(warehouse_port=port))
    seen = []
    while not stop_file.exists():
        if len(seen) == 1:
            ready_file.touch()
        seen.append(figures(client, "race-reads"))
    out_file.write_text(json.dumps(seen))
    """
)


def figures_of(client: Client, customer: str) -> dict[str, Any]:
    """The figures as the reader sees them (through JSON, like its report)."""
    answer: dict[str, Any] = json.loads(json.dumps(figures(client, customer)))
    return answer


@pytest.mark.slow
def test_every_period_read_sees_one_whole_set_at_a_time(
    client: Client, warehouse: WarehouseProcess, database: str, tmp_path: Path
) -> None:
    sets = {
        "a": line_set("a", 7, 3000, "1"),
        "b": line_set("b", 5, 1000, "2"),
        "c": line_set("c", 7, 2000, "3"),
    }
    expected = {}
    for label, rows in sets.items():
        alone = CostWindow(f"race-{label}", "aws", "999", WINDOW.start, WINDOW.end)
        replace_window(client, alone, rows, source="test")
        expected[label] = figures_of(client, f"race-{label}")
    reads = list(expected["a"])
    for read in reads:  # the sets tell apart in every read
        assert len({json.dumps(expected[label][read]) for label in sets}) == 3, read

    window = CostWindow("race-reads", "aws", "999", WINDOW.start, WINDOW.end)
    replace_window(client, window, sets["a"], source="test")
    stop_file, out_file, ready_file = tmp_path / "stop", tmp_path / "seen.json", tmp_path / "ready"
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(warehouse.port)]
        + [str(path) for path in (stop_file, out_file, ready_file)],
        env={**os.environ, "CLICKHOUSE_DATABASE": database},
    )
    try:
        deadline = time.monotonic() + 60
        while not ready_file.exists() and reader.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        for label in WRITE_ORDER[1:]:
            batches = (sets[label].iloc[i : i + 1000] for i in range(0, len(sets[label]), 1000))
            replace_window(client, window, batches, source="test")
            time.sleep(0.5)  # a few reads of each set
        stop_file.touch()
        assert reader.wait(timeout=120) == 0
    finally:
        if reader.poll() is None:
            reader.kill()
    seen = json.loads(out_file.read_text())
    assert len(seen) >= 3, "the reader should have read while the writer worked"
    for read in reads:
        labels = []
        for observation in seen:
            matches = [label for label in sets if expected[label][read] == observation[read]]
            assert matches, f"{read}: a partial or mixed window was seen: {observation[read]}"
            labels.append(matches[0])
        changes = [label for i, label in enumerate(labels) if i == 0 or labels[i - 1] != label]
        assert is_subsequence(changes, WRITE_ORDER), f"{read}: sets out of write order: {changes}"
    assert figures_of(client, "race-reads") == expected["c"]


def test_latest_starts_over_when_a_window_is_replaced_between_its_two_queries(
    client: Client,
) -> None:
    window = CostWindow("race-latest", "aws", "999", WINDOW.start, WINDOW.end)
    replace_window(client, window, line_set("a", 7, 30, "1"), source="test")  # newest day: 7th

    class ReplacedMidRead(CostReader):
        """Publishes a set without the 7th right after the day states picked the 7th."""

        replaced = False

        def rows(self, sql: str, parameters: Mapping[str, Any]) -> Sequence[Sequence[Any]]:
            if sql in LATEST_SQL.values() and not self.replaced:
                ReplacedMidRead.replaced = True
                replace_window(client, window, line_set("b", 5, 10, "2"), source="test")
            return super().rows(sql, parameters)

    reader = ReplacedMidRead(client, CostQuery("race-latest", "aws", CostMetric.billed))
    [provider] = reader.get_latest_costs().providers
    assert ReplacedMidRead.replaced
    # The 5th with set b's lines, not the 7th of set a with none.
    assert (str(provider.day), len(provider.items)) == ("2026-10-05", 10)
    assert [str(t.amount) for t in provider.totals] == ["20.000000000000"]


def test_by_resource_starts_over_when_a_window_is_replaced_between_its_two_queries(
    client: Client,
) -> None:
    window = CostWindow("race-resources", "aws", "999", WINDOW.start, WINDOW.end)
    replace_window(client, window, line_set("a", 7, 30, "1"), source="test")
    texts: list[str] = []

    class ReplacedMidRead(CostReader):
        """Publishes set b right after the groups of set a were read, before their names."""

        replaced = False
        keyed_min_lines = 0

        def rows(self, sql: str, parameters: Mapping[str, Any]) -> Sequence[Sequence[Any]]:
            texts.append(sql)
            if sql in BY_RESOURCE_NAMES_SQL.values() and not self.replaced:
                ReplacedMidRead.replaced = True
                replace_window(client, window, line_set("b", 5, 10, "2"), source="test")
            return super().rows(sql, parameters)

    reader = ReplacedMidRead(client, CostQuery("race-resources", "aws", CostMetric.billed))
    answer = reader.get_cost_by_resource(PERIOD, limit=1000)
    assert ReplacedMidRead.replaced
    # Set b's 50 resources at 2 each, not set a's groups with set b's names (or none).
    assert {(r.resource_id[:2], str(r.amount)) for r in answer.data} == {("b-", "2.000000000000")}
    assert len(answer.data) == 50
    assert [str(t.amount) for t in answer.totals] == ["100.000000000000"]
    # Started over with the two queries, not the exact text's string grouping.
    assert texts.count(BY_RESOURCE_TOP_SQL[False]) == 2
    assert BY_RESOURCE_SQL[False] not in texts
