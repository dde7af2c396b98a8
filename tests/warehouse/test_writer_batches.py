"""The write path's batches and vectorised rules: a stream of frames or Arrow data stores exactly
what one DataFrame stores, and the per-value rules (exact amounts rounded half-even to 12 places,
times in UTC, blanks as NULL) hold for every input kind."""

from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal

import pandas as pd
import pyarrow as pa
import pytest
from clickhouse_connect.driver.client import Client

from cost_pipelines.warehouse.writer import (
    MONEY_QUANTUM,
    CostWindow,
    InvalidCostRows,
    replace_window,
)

WINDOW = CostWindow("batches", "aws", "111122223333", date(2026, 10, 1), date(2026, 10, 8))
STORED = (
    "SELECT toString(ChargePeriodStart), toString(ChargePeriodEnd), toString(BillingPeriodEnd), "
    "BilledCost, EffectiveCost, ListCost, PricingQuantity, BillingCurrency, ServiceName, "
    "ResourceId, ChargeClass, Tags, x_Estimated "
    "FROM costs_current(customer_id={c:String}) ORDER BY ResourceId"
)


def lines(n: int) -> pd.DataFrame:
    """n lines mixing the value kinds collectors hand over."""
    return pd.DataFrame(
        {
            "ChargePeriodStart": [f"2026-10-0{1 + i % 7}T0{i % 10}:00:00Z" for i in range(n)],
            "BilledCost": [f"{i}.{i:013d}5" for i in range(n)],  # 14 decimals: rounded
            "EffectiveCost": [None if i % 3 == 0 else f" {i}.25 " for i in range(n)],
            "ListCost": ["" if i % 4 == 0 else f"1e-{i % 9}" for i in range(n)],
            "PricingQuantity": [float(i) / 10 for i in range(n)],
            "BillingCurrency": ["usd" if i % 2 else "EUR" for i in range(n)],
            "ServiceName": [None if i % 5 == 0 else f"svc-{i % 3}" for i in range(n)],
            "ResourceId": [f"r-{i:05d}" for i in range(n)],
            "ChargeClass": ["Correction" if i % 6 == 0 else "" for i in range(n)],
            "Tags": [{"n": str(i)} if i % 2 else None for i in range(n)],
        }
    )


def stored(client: Client) -> list[tuple[object, ...]]:
    return [tuple(row) for row in client.query(STORED, parameters={"c": "batches"}).result_rows]


def expected_amount(text: str | float | None) -> Decimal | None:
    """The per-value rule, computed with Python's Decimal: the reference for the vectorised path."""
    if text is None or pd.isna(text) or (isinstance(text, str) and not text.strip()):
        return None
    value = Decimal(repr(text)) if isinstance(text, float) else Decimal(text.strip())
    return value.quantize(MONEY_QUANTUM, rounding=ROUND_HALF_EVEN)


def test_a_stream_of_batches_stores_exactly_what_one_frame_stores(client: Client) -> None:
    frame = lines(2500)
    one = replace_window(client, WINDOW, frame, source="test")
    as_frame = stored(client)
    streamed = replace_window(
        client, WINDOW, (frame.iloc[i : i + 700] for i in range(0, 2500, 700)), source="test"
    )
    assert stored(client) == as_frame
    assert (one.rows_written, one.billed_by_currency) == (
        streamed.rows_written,
        streamed.billed_by_currency,
    )
    assert len(as_frame) == 2500
    for row, (_, line) in zip(as_frame, frame.iterrows(), strict=True):
        assert row[3] == expected_amount(line["BilledCost"])
        assert row[4] == expected_amount(line["EffectiveCost"])
        assert row[5] == expected_amount(line["ListCost"])
        assert row[6] == expected_amount(line["PricingQuantity"])
        assert row[7] == line["BillingCurrency"].upper()
        assert row[8] == ("" if pd.isna(line["ServiceName"]) else line["ServiceName"])
        assert row[10] == (line["ChargeClass"] or None)
        assert row[11] == (line["Tags"] or {})
    totals: dict[str, Decimal] = {}
    for line in frame.itertuples():
        currency = str(line.BillingCurrency).upper()
        totals[currency] = totals.get(currency, Decimal(0)) + expected_amount(line.BilledCost)  # type: ignore[operator]
    assert one.billed_by_currency == dict(sorted(totals.items()))


def test_arrow_batches_of_native_types_store_the_same_values(client: Client) -> None:
    frame = lines(300)
    replace_window(client, WINDOW, frame, source="test")
    as_frame = stored(client)
    table = pa.table(
        {
            "ChargePeriodStart": pa.array(
                pd.to_datetime(frame["ChargePeriodStart"], utc=True), pa.timestamp("ms", "UTC")
            ),
            "BilledCost": pa.array(
                [expected_amount(v) for v in frame["BilledCost"]], pa.decimal128(38, 12)
            ),
            "EffectiveCost": pa.array(
                [expected_amount(v) for v in frame["EffectiveCost"]], pa.decimal128(30, 4)
            ),
            "ListCost": pa.array([expected_amount(v) for v in frame["ListCost"]]),
            "PricingQuantity": pa.array(frame["PricingQuantity"], pa.float64()),
            "BillingCurrency": pa.array(frame["BillingCurrency"]).dictionary_encode(),
            "ServiceName": pa.array(frame["ServiceName"], pa.string()),
            "ResourceId": pa.array(frame["ResourceId"], pa.large_string()),
            "ChargeClass": pa.array(frame["ChargeClass"], pa.string()),
            "Tags": pa.array(list(frame["Tags"]), pa.map_(pa.string(), pa.string())),
        }
    )
    replace_window(client, WINDOW, table.to_batches(max_chunksize=120), source="test")
    assert stored(client) == as_frame


def test_a_bad_value_in_a_later_batch_is_named_by_its_row_in_the_whole_set(
    client: Client,
) -> None:
    replace_window(client, WINDOW, lines(10), source="test")
    before = stored(client)
    frame = lines(2000)
    frame.loc[1500, "BillingCurrency"] = "dollars"
    with pytest.raises(
        InvalidCostRows, match="row 1500: BillingCurrency 'dollars' is not an ISO 4217 code"
    ):
        replace_window(
            client, WINDOW, (frame.iloc[i : i + 600] for i in range(0, 2000, 600)), source="test"
        )
    frame = lines(2000)
    frame.loc[1999, "BilledCost"] = "1.2.3"
    with pytest.raises(InvalidCostRows, match=r"row 1999: BilledCost '1\.2\.3' is not a number"):
        replace_window(client, WINDOW, [frame.iloc[:1000], frame.iloc[1000:]], source="test")
    assert stored(client) == before  # the batches already sent stay invisible


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("BilledCost", float("inf"), "row 3: BilledCost 'inf' is not a finite number"),
        ("BilledCost", None, "row 3: BilledCost is missing"),
        ("ChargePeriodStart", None, "row 3: ChargePeriodStart is missing"),
        ("ChargePeriodStart", "2026-13-45", "row 3: ChargePeriodStart '2026-13-45' is not a"),
    ],
)
def test_each_rule_names_the_first_bad_row(
    client: Client, column: str, value: object, message: str
) -> None:
    frame = lines(6).astype(object)
    frame.loc[3, column] = value
    with pytest.raises(InvalidCostRows, match=message):
        replace_window(client, WINDOW, frame, source="test")


def test_timestamps_another_parser_reads_are_still_accepted(client: Client) -> None:
    frame = pd.DataFrame(
        {
            "ChargePeriodStart": ["2026-10-02", "10/03/2026", pd.Timestamp("2026-10-04 05:00")],
            "BilledCost": ["1", "2", "3"],
            "BillingCurrency": ["USD"] * 3,
            "ResourceId": ["a", "b", "c"],
        }
    )
    replace_window(client, WINDOW, frame, source="test")
    assert [row[0] for row in stored(client)] == [
        "2026-10-02 00:00:00",
        "2026-10-03 00:00:00",
        "2026-10-04 05:00:00",
    ]
